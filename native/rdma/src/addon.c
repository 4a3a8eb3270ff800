/*
 * Module set-up, per-environment state, object lifetimes, helpers.
 */
#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t global_mutex = PTHREAD_MUTEX_INITIALIZER;
static uint32_t token_counter;

void global_lock(void) { pthread_mutex_lock(&global_mutex); }
void global_unlock(void) { pthread_mutex_unlock(&global_mutex); }

/* Called with the global lock held. Never 0 (0 means "not in transit"). */
uint32_t next_token(void) {
  if (++token_counter == 0) token_counter = 1;
  return token_counter;
}

env_state *env_of(napi_env env) {
  env_state *es = NULL;
  napi_get_instance_data(env, (void **)&es);
  return es;
}

/* ---- objects ------------------------------------------------------------ */

void obj_link(env_state *es, obj *o) {
  o->env = es;
  o->prev = es->head.prev;
  o->next = &es->head;
  es->head.prev->next = o;
  es->head.prev = o;
}

void obj_unlink(obj *o) {
  if (o->prev) {
    o->prev->next = o->next;
    o->next->prev = o->prev;
  }
  o->prev = o->next = NULL;
}

obj *obj_new(env_state *es, kind_t kind, size_t size) {
  obj *o = calloc(1, size);
  if (!o) return NULL;
  o->kind = kind;
  o->holders = 1; /* alive */
  o->alive = true;
  obj_link(es, o);
  return o;
}

void obj_release(obj *o) {
  if (--o->holders == 0) free(o);
}

/* A wrapper was collected. Its reference is deleted unless a newer wrapper replaced it
 * meanwhile (finalizers may run late; wrap_new then deleted the old reference). */
static void wrapper_finalize(napi_env env, void *data, void *hint) {
  obj *o = data;
  if (o->self && (uint32_t)(uintptr_t)hint == o->wrap_gen) {
    napi_delete_reference(env, o->self);
    o->self = NULL;
  }
  obj_release(o);
}

/* A new JS wrapper for o (the class of its kind), strong or weak. */
napi_value wrap_new(env_state *es, obj *o, bool strong) {
  napi_env env = es->env;
  napi_value ctor, instance = NULL;
  if (o->self) {
    napi_delete_reference(env, o->self); /* its wrapper is gone (or going) */
    o->self = NULL;
  }
  o->wrap_gen++;
  napi_get_reference_value(env, es->ctors[o->kind], &ctor);
  es->constructing = o;
  napi_status status = napi_new_instance(env, ctor, 0, NULL, &instance);
  es->constructing = NULL;
  if (status != napi_ok) return NULL;
  napi_create_reference(env, instance, strong ? 1 : 0, &o->self);
  return instance;
}

napi_value wrapper_of(napi_env env, obj *o) {
  napi_value value = NULL;
  if (o->self) napi_get_reference_value(env, o->self, &value);
  if (value) return value;
  /* the wrapper was collected: make a new one */
  return wrap_new(env_of(env), o, false);
}

void make_weak(napi_env env, obj *o) {
  uint32_t count = 0;
  if (o->self) napi_reference_unref(env, o->self, &count);
}

/* The constructor every class shares: only the addon may call it. */
static napi_value internal_constructor(napi_env env, napi_callback_info info) {
  napi_value self;
  napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
  env_state *es = env_of(env);
  if (!es || !es->constructing) return throw_type(env, "not constructible: use the addon's factory functions");
  obj *o = es->constructing;
  o->holders++;
  napi_wrap(env, self, o, wrapper_finalize, (void *)(uintptr_t)o->wrap_gen, NULL);
  return self;
}

static const char *kind_names[K_COUNT] = {"CmEventChannel", "CmId", "Device", "ProtectionDomain",
                                          "CompletionChannel", "CompletionQueue", "SharedReceiveQueue",
                                          "QueuePair", "MemoryRegion"};

static obj *check_obj(napi_env env, obj *o, kind_t kind, const char *what) {
  char message[160];
  if (!o || o->kind != kind) {
    snprintf(message, sizeof message, "%s must be a %s%s", what, kind_names[kind],
             kind == K_ID ? " (one handed to another thread by transfer() is not one here any more)" : "");
    throw_type(env, message);
    return NULL;
  }
  if (!o->alive) {
    snprintf(message, sizeof message, "%s: this %s was destroyed", what, kind_names[kind]);
    throw_error(env, message);
    return NULL;
  }
  if (o->env != env_of(env)) {
    snprintf(message, sizeof message, "%s: this %s belongs to another thread (transferred)", what,
             kind_names[kind]);
    throw_error(env, message);
    return NULL;
  }
  return o;
}

obj *unwrap_this(napi_env env, napi_callback_info info, kind_t kind, size_t *argc, napi_value *argv) {
  napi_value self;
  size_t zero = 0;
  if (napi_get_cb_info(env, info, argc ? argc : &zero, argv, &self, NULL) != napi_ok) return NULL;
  obj *o = NULL;
  if (napi_unwrap(env, self, (void **)&o) != napi_ok) o = NULL;
  return check_obj(env, o, kind, "this");
}

obj *unwrap_arg(napi_env env, napi_value value, kind_t kind, const char *what) {
  obj *o = NULL;
  napi_valuetype type;
  napi_typeof(env, value, &type);
  if (type != napi_object || napi_unwrap(env, value, (void **)&o) != napi_ok) o = NULL;
  return check_obj(env, o, kind, what);
}

/* ---- errors and values -------------------------------------------------- */

napi_value throw_errno(napi_env env, int err, const char *call) {
  char message[256];
  const char *name = strerrorname_np(err);
  snprintf(message, sizeof message, "%s: %s (%s)", call, strerror(err), name ? name : "?");
  napi_value error, text, code;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, text, &error);
  set_num(env, error, "errno", err);
  set_str(env, error, "syscall", call);
  napi_throw(env, error);
  return NULL;
}

napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

napi_value undefined(napi_env env) {
  napi_value value;
  napi_get_undefined(env, &value);
  return value;
}

napi_value num(napi_env env, double value) {
  napi_value result;
  napi_create_double(env, value, &result);
  return result;
}

napi_value str(napi_env env, const char *value) {
  napi_value result;
  napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &result);
  return result;
}

void set_val(napi_env env, napi_value object, const char *name, napi_value value) {
  napi_set_named_property(env, object, name, value);
}

void set_num(napi_env env, napi_value object, const char *name, double value) {
  set_val(env, object, name, num(env, value));
}

void set_str(napi_env env, napi_value object, const char *name, const char *value) {
  set_val(env, object, name, str(env, value));
}

bool get_u32(napi_env env, napi_value value, uint32_t *out) {
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok || d < 0 || d > 4294967295.0 || d != (double)(uint32_t)d)
    return false;
  *out = (uint32_t)d;
  return true;
}

/* The bytes of a Buffer / typed array / DataView (for private data and the like). */
bool get_bytes(napi_env env, napi_value value, const char *what, void **data, size_t *length) {
  bool is = false;
  napi_is_typedarray(env, value, &is);
  if (is) {
    napi_typedarray_type type;
    size_t count, offset;
    napi_value buffer;
    napi_get_typedarray_info(env, value, &type, &count, data, &buffer, &offset);
    size_t size = 1;
    switch (type) {
    case napi_int16_array: case napi_uint16_array: size = 2; break;
#ifdef NODE_API_HAS_FLOAT16_ARRAY
    case napi_float16_array: size = 2; break;
#endif
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: size = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: size = 8; break;
    default: size = 1;
    }
    *length = count * size;
    return true;
  }
  napi_is_dataview(env, value, &is);
  if (is) {
    napi_value buffer;
    size_t offset;
    napi_get_dataview_info(env, value, length, data, &buffer, &offset);
    return true;
  }
  char message[128];
  snprintf(message, sizeof message, "%s must be a Buffer or typed array", what);
  throw_type(env, message);
  return false;
}

/* Missing trailing arguments read as undefined. */
void fill_undefined(napi_env env, size_t argc, napi_value *argv, size_t max) {
  for (size_t i = argc; i < max; i++) napi_get_undefined(env, &argv[i]);
}

bool is_nullish(napi_env env, napi_value value) {
  napi_valuetype type;
  napi_typeof(env, value, &type);
  return type == napi_undefined || type == napi_null;
}

/* An optional unsigned property of an options object; false (and a TypeError) when malformed. */
bool opt_u32(napi_env env, napi_value object, const char *name, uint32_t fallback, uint32_t *out) {
  napi_value value;
  bool has = false;
  *out = fallback;
  if (is_nullish(env, object)) return true;
  napi_has_named_property(env, object, name, &has);
  if (!has) return true;
  napi_get_named_property(env, object, name, &value);
  if (is_nullish(env, value)) return true;
  if (!get_u32(env, value, out)) {
    char message[128];
    snprintf(message, sizeof message, "option %s must be an unsigned 32-bit integer", name);
    throw_type(env, message);
    return false;
  }
  return true;
}

/* An optional object-valued property; *out is NULL when absent or nullish. */
bool opt_obj(napi_env env, napi_value object, const char *name, napi_value *out) {
  napi_value value;
  bool has = false;
  *out = NULL;
  if (is_nullish(env, object)) return true;
  napi_has_named_property(env, object, name, &has);
  if (!has) return true;
  napi_get_named_property(env, object, name, &value);
  if (!is_nullish(env, value)) *out = value;
  return true;
}

int set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return errno;
  return 0;
}

/* ---- watchers: a readable fd calls back into JS ------------------------- */

static void watcher_closed(uv_handle_t *handle) {
  watcher *w = handle->data;
  env_state *es = w->owner->env;
  w->open = false;
  w->closing = false;
  obj *owner = w->owner;
  if (es) {
    es->open_handles--;
    if (es->tearing_down && es->open_handles == 0 && es->cleanup_handle) {
      napi_async_cleanup_hook_handle h = es->cleanup_handle;
      es->cleanup_handle = NULL;
      napi_remove_async_cleanup_hook(h);
    }
  }
  if (w->after_close) w->after_close(owner);
  obj_release(owner);
}

int watcher_start(env_state *es, watcher *w, obj *owner, int fd, napi_value callback, uv_poll_cb cb) {
  if (w->open && !w->closing) return EBUSY;
  if (w->closing) return EBUSY;
  int err = set_nonblocking(fd);
  if (err) return err;
  err = -uv_poll_init(es->loop, &w->poll, fd);
  if (err) return err;
  w->owner = owner;
  w->poll.data = w;
  w->open = true;
  owner->holders++;
  es->open_handles++;
  napi_create_reference(es->env, callback, 1, &w->callback);
  err = -uv_poll_start(&w->poll, UV_READABLE, cb);
  if (err) {
    watcher_stop(w);
    return err;
  }
  return 0;
}

void watcher_stop(watcher *w) {
  if (!w->open || w->closing) return;
  w->closing = true;
  uv_poll_stop(&w->poll);
  env_state *es = w->owner->env;
  if (w->callback && es && !es->tearing_down) napi_delete_reference(es->env, w->callback);
  w->callback = NULL;
  uv_close((uv_handle_t *)&w->poll, watcher_closed);
}

void watcher_set_ref(watcher *w, bool ref) {
  if (!w->open || w->closing) return;
  if (ref)
    uv_ref((uv_handle_t *)&w->poll);
  else
    uv_unref((uv_handle_t *)&w->poll);
}

/* Calls a JS callback from a libuv callback: a handle scope, microtasks after, and an
 * exception thrown by the callback goes to process 'uncaughtException'. */
void call_js(env_state *es, napi_ref callback, size_t argc, napi_value *argv) {
  napi_env env = es->env;
  napi_value fn, recv;
  if (!callback || napi_get_reference_value(env, callback, &fn) != napi_ok || !fn) return;
  napi_get_global(env, &recv); /* napi_make_callback wants an object as receiver */
  napi_status status = napi_make_callback(env, es->async_context, recv, fn, argc, argv, NULL);
  if (status == napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  } else if (status != napi_ok) {
    fprintf(stderr, "nvmf-rdma: calling back into JavaScript failed (napi status %d)\n", (int)status);
  }
}

/* ---- devices ------------------------------------------------------------ */

static void refresh_devices(env_state *es) {
  int count = 0;
  struct ibv_context **list = rdma_get_devices(&count);
  if (!list) return;
  device_obj **devs = calloc(count > 0 ? count : 1, sizeof *devs);
  if (!devs) {
    rdma_free_devices(list);
    return;
  }
  for (int i = 0; i < count; i++) {
    for (int j = 0; j < es->dev_count; j++) {
      if (es->devs[j] && es->devs[j]->ctx == list[i]) {
        devs[i] = es->devs[j];
        es->devs[j] = NULL;
      }
    }
    if (!devs[i]) {
      devs[i] = (device_obj *)obj_new(es, K_DEVICE, sizeof(device_obj));
      if (devs[i]) devs[i]->ctx = list[i];
    }
  }
  /* devices that disappeared keep their objects until the environment ends */
  free(es->devs);
  if (es->dev_list) rdma_free_devices(es->dev_list);
  es->dev_list = list;
  es->devs = devs;
  es->dev_count = count;
}

device_obj *device_for(env_state *es, struct ibv_context *ctx) {
  if (!ctx) return NULL;
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < es->dev_count; i++) {
      if (es->devs[i] && es->devs[i]->ctx == ctx) return es->devs[i];
    }
    refresh_devices(es);
  }
  return NULL;
}

static napi_value devices(napi_env env, napi_callback_info info) {
  env_state *es = env_of(env);
  refresh_devices(es);
  napi_value array;
  napi_create_array(env, &array);
  uint32_t n = 0;
  for (int i = 0; i < es->dev_count; i++) {
    if (!es->devs[i]) continue;
    napi_value wrapper = wrapper_of(env, &es->devs[i]->base);
    if (wrapper) napi_set_element(env, array, n++, wrapper);
  }
  return array;
}

static napi_value wc_status_string(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t status;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !get_u32(env, argv[0], &status)) return throw_type(env, "status must be a number");
  return str(env, ibv_wc_status_str((enum ibv_wc_status)status));
}

static napi_value event_string(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t type;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !get_u32(env, argv[0], &type)) return throw_type(env, "type must be a number");
  return str(env, rdma_event_str((enum rdma_cm_event_type)type));
}

/* ---- environment teardown ----------------------------------------------- */

/* Releases every resource this environment still holds, in dependency order, and
 * closes its libuv handles; Node waits for the closes before freeing the loop. */
static void env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  env_state *es = arg;
  es->tearing_down = true;
  es->cleanup_handle = handle;
  static const kind_t order[] = {K_QP, K_ID, K_SRQ, K_CQ, K_MR, K_PD, K_COMPCHAN, K_CHANNEL, K_DEVICE};
  for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
    obj *o = es->head.next;
    while (o != &es->head) {
      obj *next = o->next;
      if (o->kind == order[k]) {
        if (o->kind == K_CHANNEL || o->kind == K_ID)
          cm_destroy(o);
        else
          verbs_destroy(o);
      }
      o = next;
    }
  }
  if (es->open_handles == 0) {
    es->cleanup_handle = NULL;
    napi_remove_async_cleanup_hook(handle);
  }
}

static void env_finalize(napi_env env, void *data, void *hint) {
  env_state *es = data;
  if (es->dev_list) rdma_free_devices(es->dev_list);
  free(es->devs);
  free(es->mrs);
  free(es);
}

/* ---- module ------------------------------------------------------------- */

static void define_constant(napi_env env, napi_value object, const char *name, double value) {
  set_num(env, object, name, value);
}

static napi_value constants(napi_env env) {
  napi_value c;
  napi_create_object(env, &c);
#define K(name, value) define_constant(env, c, name, value)
  K("WR_WORDS", WR_WORDS);
  K("WR_MAX_SGE", WR_MAX_SGE);
  K("WR_HEADER_WORDS", WR_HEADER_WORDS);
  K("WR_OPCODE", WR_OPCODE);
  K("WR_FLAGS", WR_FLAGS);
  K("WR_ID_LO", WR_ID_LO);
  K("WR_ID_HI", WR_ID_HI);
  K("WR_NUM_SGE", WR_NUM_SGE);
  K("WR_IMM_OR_INV", WR_IMM_OR_INV);
  K("WR_REMOTE_ADDR_LO", WR_REMOTE_ADDR_LO);
  K("WR_REMOTE_ADDR_HI", WR_REMOTE_ADDR_HI);
  K("WR_RKEY", WR_RKEY);
  K("WC_WORDS", WC_WORDS);
  K("WC_ID_LO", WC_ID_LO);
  K("WC_ID_HI", WC_ID_HI);
  K("WC_STATUS", WC_STATUS);
  K("WC_OPCODE", WC_OPCODE);
  K("WC_BYTE_LEN", WC_BYTE_LEN);
  K("WC_QP_NUM", WC_QP_NUM);
  K("WC_FLAGS", WC_FLAGS);
  K("WC_IMM_OR_INV", WC_IMM_OR_INV);
  K("OP_RDMA_WRITE", IBV_WR_RDMA_WRITE);
  K("OP_RDMA_WRITE_WITH_IMM", IBV_WR_RDMA_WRITE_WITH_IMM);
  K("OP_SEND", IBV_WR_SEND);
  K("OP_SEND_WITH_IMM", IBV_WR_SEND_WITH_IMM);
  K("OP_RDMA_READ", IBV_WR_RDMA_READ);
  K("OP_SEND_WITH_INV", IBV_WR_SEND_WITH_INV);
  K("SEND_FENCE", IBV_SEND_FENCE);
  K("SEND_SIGNALED", IBV_SEND_SIGNALED);
  K("SEND_SOLICITED", IBV_SEND_SOLICITED);
  K("SEND_INLINE", IBV_SEND_INLINE);
  K("ACCESS_LOCAL_WRITE", IBV_ACCESS_LOCAL_WRITE);
  K("ACCESS_REMOTE_WRITE", IBV_ACCESS_REMOTE_WRITE);
  K("ACCESS_REMOTE_READ", IBV_ACCESS_REMOTE_READ);
  K("WC_SEND", IBV_WC_SEND);
  K("WC_RDMA_WRITE", IBV_WC_RDMA_WRITE);
  K("WC_RDMA_READ", IBV_WC_RDMA_READ);
  K("WC_RECV", IBV_WC_RECV);
  K("WC_RECV_RDMA_WITH_IMM", IBV_WC_RECV_RDMA_WITH_IMM);
  K("WC_WITH_IMM", IBV_WC_WITH_IMM);
  K("WC_WITH_INV", IBV_WC_WITH_INV);
  K("WC_SUCCESS", IBV_WC_SUCCESS);
  K("WC_LOC_LEN_ERR", IBV_WC_LOC_LEN_ERR);
  K("WC_LOC_PROT_ERR", IBV_WC_LOC_PROT_ERR);
  K("WC_WR_FLUSH_ERR", IBV_WC_WR_FLUSH_ERR);
  K("WC_REM_ACCESS_ERR", IBV_WC_REM_ACCESS_ERR);
  K("WC_REM_INV_REQ_ERR", IBV_WC_REM_INV_REQ_ERR);
  K("WC_RETRY_EXC_ERR", IBV_WC_RETRY_EXC_ERR);
  K("WC_RNR_RETRY_EXC_ERR", IBV_WC_RNR_RETRY_EXC_ERR);
  K("QPS_RESET", IBV_QPS_RESET);
  K("QPS_INIT", IBV_QPS_INIT);
  K("QPS_RTR", IBV_QPS_RTR);
  K("QPS_RTS", IBV_QPS_RTS);
  K("QPS_ERR", IBV_QPS_ERR);
  K("CM_ADDR_RESOLVED", RDMA_CM_EVENT_ADDR_RESOLVED);
  K("CM_ADDR_ERROR", RDMA_CM_EVENT_ADDR_ERROR);
  K("CM_ROUTE_RESOLVED", RDMA_CM_EVENT_ROUTE_RESOLVED);
  K("CM_ROUTE_ERROR", RDMA_CM_EVENT_ROUTE_ERROR);
  K("CM_CONNECT_REQUEST", RDMA_CM_EVENT_CONNECT_REQUEST);
  K("CM_CONNECT_RESPONSE", RDMA_CM_EVENT_CONNECT_RESPONSE);
  K("CM_CONNECT_ERROR", RDMA_CM_EVENT_CONNECT_ERROR);
  K("CM_UNREACHABLE", RDMA_CM_EVENT_UNREACHABLE);
  K("CM_REJECTED", RDMA_CM_EVENT_REJECTED);
  K("CM_ESTABLISHED", RDMA_CM_EVENT_ESTABLISHED);
  K("CM_DISCONNECTED", RDMA_CM_EVENT_DISCONNECTED);
  K("CM_DEVICE_REMOVAL", RDMA_CM_EVENT_DEVICE_REMOVAL);
  K("CM_ADDR_CHANGE", RDMA_CM_EVENT_ADDR_CHANGE);
  K("CM_TIMEWAIT_EXIT", RDMA_CM_EVENT_TIMEWAIT_EXIT);
  K("PORT_ACTIVE", IBV_PORT_ACTIVE);
#undef K
  return c;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  env_state *es = calloc(1, sizeof *es);
  if (!es) {
    throw_error(env, "out of memory");
    return NULL;
  }
  es->env = env;
  es->head.next = es->head.prev = &es->head;
  if (napi_get_uv_event_loop(env, &es->loop) != napi_ok) {
    free(es);
    throw_error(env, "no libuv loop");
    return NULL;
  }
  napi_set_instance_data(env, es, env_finalize, NULL);
  napi_value resource_name;
  napi_create_string_utf8(env, "nvmf-rdma", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &es->async_context);
  napi_add_async_cleanup_hook(env, env_cleanup, es, NULL);

  napi_property_descriptor functions[] = {
      {"devices", NULL, devices, NULL, NULL, NULL, napi_enumerable, NULL},
      {"createEventChannel", NULL, cm_create_event_channel, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adoptCmId", NULL, cm_adopt, NULL, NULL, NULL, napi_enumerable, NULL},
      {"wcStatusString", NULL, wc_status_string, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cmEventString", NULL, event_string, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  set_val(env, exports, "constants", constants(env));
  cm_define(env, es, exports);
  verbs_define(env, es, exports);
  return exports;
}

/* Shared by cm.c and verbs.c to define a class whose instances only the addon makes. */
napi_value define_class(napi_env env, env_state *es, kind_t kind, size_t count,
                        const napi_property_descriptor *properties) {
  napi_value ctor;
  napi_define_class(env, kind_names[kind], NAPI_AUTO_LENGTH, internal_constructor, NULL, count, properties,
                    &ctor);
  napi_create_reference(env, ctor, 1, &es->ctors[kind]);
  return ctor;
}
