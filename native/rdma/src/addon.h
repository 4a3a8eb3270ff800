/*
 * nvmf-ts RDMA addon: a thin N-API layer over librdmacm and libibverbs.
 *
 * Every native resource is an `obj` owned by one Node environment (the main
 * thread or a worker): it sits on that environment's list until destroyed, and
 * everything still on the list is released when the environment goes away.
 * JS wrappers point at their obj; an obj's memory lives until every holder
 * (the JS wrapper, "alive", an open uv handle) has let go, so a wrapper never
 * points at freed memory. A CM id may move between environments (transfer /
 * adopt); nothing else does.
 */
#ifndef NVMF_RDMA_ADDON_H
#define NVMF_RDMA_ADDON_H

#define _GNU_SOURCE
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <infiniband/verbs.h>
#include <node_api.h>
#include <rdma/rdma_cma.h>
#include <uv.h>

/* Work request and work completion records exchanged through Uint32Arrays. */
#define WR_WORDS 64          /* one work request: 16 header words + 16 SGEs x 3 */
#define WR_HEADER_WORDS 16
#define WR_MAX_SGE 16
#define WR_OPCODE 0
#define WR_FLAGS 1
#define WR_ID_LO 2
#define WR_ID_HI 3
#define WR_NUM_SGE 4
#define WR_IMM_OR_INV 5      /* immediate data, or the rkey SEND_WITH_INV invalidates */
#define WR_REMOTE_ADDR_LO 6
#define WR_REMOTE_ADDR_HI 7
#define WR_RKEY 8
#define WR_SGE_MR 0          /* per SGE, at WR_HEADER_WORDS + 3 * i: MR index, offset, length */
#define WR_SGE_OFFSET 1
#define WR_SGE_LENGTH 2

#define WC_WORDS 8
#define WC_ID_LO 0
#define WC_ID_HI 1
#define WC_STATUS 2
#define WC_OPCODE 3
#define WC_BYTE_LEN 4
#define WC_QP_NUM 5
#define WC_FLAGS 6
#define WC_IMM_OR_INV 7

#define POST_BATCH 64        /* work requests handed to one ibv_post_* call */
#define POLL_BATCH 64        /* completions fetched by one ibv_poll_cq call */
#define EVENTS_PER_WAKEUP 64 /* CM / async events read per readiness callback */

typedef enum {
  K_CHANNEL = 0,
  K_ID,
  K_DEVICE,
  K_PD,
  K_COMPCHAN,
  K_CQ,
  K_SRQ,
  K_QP,
  K_MR,
  K_COUNT
} kind_t;

typedef struct env_state env_state;

typedef struct obj {
  kind_t kind;
  env_state *env;        /* owning environment; NULL while a CM id is in transit */
  struct obj *prev, *next;
  napi_ref self;         /* the JS wrapper (strong for CM ids until destroyed) */
  uint32_t wrap_gen;     /* which wrapper `self` belongs to (a collected one may be replaced) */
  int holders;           /* wrapper + alive + open uv handle; freed at zero */
  bool alive;            /* the native resource exists */
} obj;

/* A file descriptor watched by libuv; calls back into JS when readable. */
typedef struct watcher {
  uv_poll_t poll;
  napi_ref callback;
  bool open;             /* uv handle initialized and not yet closed */
  bool closing;
  obj *owner;
  void (*after_close)(obj *owner); /* releases what the fd belongs to, once libuv let go of it */
} watcher;

typedef struct channel_obj {
  obj base;
  struct rdma_event_channel *ch;
  watcher w;
  uint32_t token;
  int ids;               /* CM ids whose events arrive here (guarded by the global lock) */
  struct channel_obj *next_global;
} channel_obj;

struct qp_obj;

typedef struct id_obj {
  obj base;
  struct rdma_cm_id *id;
  channel_obj *chan;
  struct qp_obj *qp;
  uint32_t token;        /* non-zero while in transit between environments */
  struct id_obj *next_transit;
} id_obj;

typedef struct device_obj {
  obj base;
  struct ibv_context *ctx;
  watcher w;             /* asynchronous events */
} device_obj;

typedef struct pd_obj {
  obj base;
  struct ibv_pd *pd;
  device_obj *dev;
} pd_obj;

typedef struct compchan_obj {
  obj base;
  struct ibv_comp_channel *cc;
  watcher w;
} compchan_obj;

typedef struct cq_obj {
  obj base;
  struct ibv_cq *cq;
  int entries;
} cq_obj;

typedef struct srq_obj {
  obj base;
  struct ibv_srq *srq;
  pd_obj *pd;
  int last_error;
} srq_obj;

typedef struct qp_obj {
  obj base;
  struct ibv_qp *qp;
  id_obj *id;
  pd_obj *pd;
  int last_error;
} qp_obj;

typedef struct mr_obj {
  obj base;
  struct ibv_mr *mr;
  pd_obj *pd;
  uint32_t index;
  uint8_t *addr;
  size_t length;
  napi_ref memory;       /* keeps the SharedArrayBuffer view (and its backing store) alive */
} mr_obj;

struct env_state {
  napi_env env;
  uv_loop_t *loop;
  obj head;              /* list sentinel */
  napi_ref ctors[K_COUNT];
  obj *constructing;     /* set while the addon itself creates a wrapper */
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup_handle;
  int open_handles;
  bool tearing_down;
  mr_obj **mrs;          /* MR index -> MR, for the SGEs of posted work requests */
  uint32_t mr_capacity;
  struct ibv_context **dev_list;
  int dev_count;
  device_obj **devs;
  struct ibv_send_wr send_wr[POST_BATCH];
  struct ibv_recv_wr recv_wr[POST_BATCH];
  struct ibv_sge sge[POST_BATCH * WR_MAX_SGE];
  struct ibv_wc wc[POLL_BATCH];
};

/* addon.c */
env_state *env_of(napi_env env);
obj *obj_new(env_state *es, kind_t kind, size_t size);
void obj_release(obj *o);
void obj_unlink(obj *o);
void obj_link(env_state *es, obj *o);
napi_value wrap_new(env_state *es, obj *o, bool strong);
obj *unwrap_this(napi_env env, napi_callback_info info, kind_t kind, size_t *argc, napi_value *argv);
obj *unwrap_arg(napi_env env, napi_value value, kind_t kind, const char *what);
napi_value wrapper_of(napi_env env, obj *o);
void make_weak(napi_env env, obj *o);
napi_value throw_errno(napi_env env, int err, const char *call);
napi_value throw_type(napi_env env, const char *message);
napi_value throw_error(napi_env env, const char *message);
napi_value undefined(napi_env env);
napi_value num(napi_env env, double value);
napi_value str(napi_env env, const char *value);
void set_num(napi_env env, napi_value object, const char *name, double value);
void set_str(napi_env env, napi_value object, const char *name, const char *value);
void set_val(napi_env env, napi_value object, const char *name, napi_value value);
bool get_u32(napi_env env, napi_value value, uint32_t *out);
bool opt_u32(napi_env env, napi_value object, const char *name, uint32_t fallback, uint32_t *out);
bool opt_obj(napi_env env, napi_value object, const char *name, napi_value *out);
bool is_nullish(napi_env env, napi_value value);
void fill_undefined(napi_env env, size_t argc, napi_value *argv, size_t max);
int set_nonblocking(int fd);
int watcher_start(env_state *es, watcher *w, obj *owner, int fd, napi_value callback, uv_poll_cb cb);
void watcher_stop(watcher *w);
void watcher_set_ref(watcher *w, bool ref);
void call_js(env_state *es, napi_ref callback, size_t argc, napi_value *argv);
device_obj *device_for(env_state *es, struct ibv_context *ctx);
void global_lock(void);
void global_unlock(void);
uint32_t next_token(void);

napi_value define_class(napi_env env, env_state *es, kind_t kind, size_t count,
                        const napi_property_descriptor *properties);
bool get_bytes(napi_env env, napi_value value, const char *what, void **data, size_t *length);

/* cm.c */
void cm_define(napi_env env, env_state *es, napi_value exports);
void cm_destroy(obj *o);
napi_value cm_create_event_channel(napi_env env, napi_callback_info info);
napi_value cm_adopt(napi_env env, napi_callback_info info);

/* verbs.c */
void verbs_define(napi_env env, env_state *es, napi_value exports);
void verbs_destroy(obj *o);
napi_value qp_create_on(napi_env env, env_state *es, id_obj *io, napi_value options);
void qp_destroy(qp_obj *q);

#endif
