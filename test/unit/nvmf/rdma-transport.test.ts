// The NVMe/RDMA target transport over the fake verbs layer, with a shared receive queue
// per poll group (the default); the suite is test/lib/rdma-transport-suite.ts.
import { rdmaTransportSuite } from '../../lib/rdma-transport-suite.ts';

rdmaTransportSuite({ noSrq: false });
