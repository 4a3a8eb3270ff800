// The RDMA base library: the addon's API and loader (native.ts), the work request and
// completion records it exchanges (work-request.ts), what a realm's RDMA users share:
// its CM event channel and protection domains (realm.ts). The NVMe/RDMA wire formats (CM
// private data, keyed SGL descriptors) are in src/wire/rdma.ts.
export * from './native.ts';
export * from './realm.ts';
export * from './work-request.ts';
