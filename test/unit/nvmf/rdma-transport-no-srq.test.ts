// The NVMe/RDMA target transport over the fake verbs layer with no_srq: each queue pair
// posts its own receives; the suite is test/lib/rdma-transport-suite.ts.
import { rdmaTransportSuite } from '../../lib/rdma-transport-suite.ts';

rdmaTransportSuite({ noSrq: true });
