/*
 * libibverbs: devices (query, asynchronous events), protection domains, memory
 * regions over SharedArrayBuffers, completion channels (fd watched by libuv),
 * completion queues polled into a Uint32Array, shared receive queues, queue
 * pairs, and posting work requests described in a Uint32Array.
 */
#include "addon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METHOD(type, kind, argc_max)                                                                       \
  size_t argc = argc_max;                                                                                  \
  napi_value argv[argc_max > 0 ? argc_max : 1];                                                            \
  type *self = (type *)unwrap_this(env, info, kind, &argc, argv);                                          \
  if (!self) return NULL;                                                                                  \
  fill_undefined(env, argc, argv, argc_max);

static void release_resource(obj *o) {
  o->alive = false;
  obj_unlink(o);
  obj_release(o);
}

/* ---- device ------------------------------------------------------------- */

static napi_value device_name(napi_env env, napi_callback_info info) {
  METHOD(device_obj, K_DEVICE, 0);
  return str(env, ibv_get_device_name(self->ctx->device));
}

static napi_value device_guid(napi_env env, napi_callback_info info) {
  METHOD(device_obj, K_DEVICE, 0);
  char text[20];
  snprintf(text, sizeof text, "%016" PRIx64, (uint64_t)be64toh(ibv_get_device_guid(self->ctx->device)));
  return str(env, text);
}

static napi_value device_query(napi_env env, napi_callback_info info) {
  METHOD(device_obj, K_DEVICE, 0);
  struct ibv_device_attr a;
  int rc = ibv_query_device(self->ctx, &a);
  if (rc) return throw_errno(env, rc, "ibv_query_device");
  napi_value r;
  napi_create_object(env, &r);
  set_str(env, r, "fwVer", a.fw_ver);
  set_num(env, r, "maxMrSize", (double)a.max_mr_size);
  set_num(env, r, "pageSizeCap", (double)a.page_size_cap);
  set_num(env, r, "vendorId", a.vendor_id);
  set_num(env, r, "vendorPartId", a.vendor_part_id);
  set_num(env, r, "maxQp", a.max_qp);
  set_num(env, r, "maxQpWr", a.max_qp_wr);
  set_num(env, r, "deviceCapFlags", a.device_cap_flags);
  set_num(env, r, "maxSge", a.max_sge);
  set_num(env, r, "maxSgeRd", a.max_sge_rd);
  set_num(env, r, "maxCq", a.max_cq);
  set_num(env, r, "maxCqe", a.max_cqe);
  set_num(env, r, "maxMr", a.max_mr);
  set_num(env, r, "maxPd", a.max_pd);
  set_num(env, r, "maxQpRdAtom", a.max_qp_rd_atom);
  set_num(env, r, "maxQpInitRdAtom", a.max_qp_init_rd_atom);
  set_num(env, r, "maxSrq", a.max_srq);
  set_num(env, r, "maxSrqWr", a.max_srq_wr);
  set_num(env, r, "maxSrqSge", a.max_srq_sge);
  set_num(env, r, "physPortCnt", a.phys_port_cnt);
  return r;
}

static napi_value device_query_port(napi_env env, napi_callback_info info) {
  METHOD(device_obj, K_DEVICE, 1);
  uint32_t port = 1;
  if (!is_nullish(env, argv[0]) && (!get_u32(env, argv[0], &port) || port > 255)) return throw_type(env, "port must be a number");
  struct ibv_port_attr a;
  int rc = ibv_query_port(self->ctx, (uint8_t)port, &a);
  if (rc) return throw_errno(env, rc, "ibv_query_port");
  napi_value r;
  napi_create_object(env, &r);
  set_num(env, r, "state", a.state);
  set_str(env, r, "stateName", ibv_port_state_str(a.state));
  set_num(env, r, "maxMtu", 128 << a.max_mtu);
  set_num(env, r, "activeMtu", 128 << a.active_mtu);
  set_num(env, r, "gidTblLen", a.gid_tbl_len);
  set_num(env, r, "linkLayer", a.link_layer);
  set_str(env, r, "linkLayerName",
          a.link_layer == IBV_LINK_LAYER_ETHERNET ? "Ethernet"
          : a.link_layer == IBV_LINK_LAYER_INFINIBAND ? "InfiniBand"
                                                      : "unspecified");
  set_num(env, r, "maxMsgSz", a.max_msg_sz);
  return r;
}

static void device_async_readable(uv_poll_t *handle, int status, int events) {
  watcher *w = handle->data;
  device_obj *dev = (device_obj *)w->owner;
  env_state *es = dev->base.env;
  for (int i = 0; i < EVENTS_PER_WAKEUP && w->open && !w->closing; i++) {
    struct ibv_async_event ev;
    if (ibv_get_async_event(dev->ctx, &ev) != 0) break;
    napi_handle_scope scope;
    napi_open_handle_scope(es->env, &scope);
    napi_value e;
    napi_create_object(es->env, &e);
    set_num(es->env, e, "type", ev.event_type);
    set_str(es->env, e, "name", ibv_event_type_str(ev.event_type));
    switch (ev.event_type) {
    case IBV_EVENT_QP_FATAL: case IBV_EVENT_QP_REQ_ERR: case IBV_EVENT_QP_ACCESS_ERR: case IBV_EVENT_COMM_EST:
    case IBV_EVENT_SQ_DRAINED: case IBV_EVENT_PATH_MIG: case IBV_EVENT_PATH_MIG_ERR: case IBV_EVENT_QP_LAST_WQE_REACHED:
      set_num(es->env, e, "qpNum", ev.element.qp->qp_num);
      break;
    case IBV_EVENT_PORT_ACTIVE: case IBV_EVENT_PORT_ERR: case IBV_EVENT_LID_CHANGE: case IBV_EVENT_PKEY_CHANGE:
    case IBV_EVENT_SM_CHANGE: case IBV_EVENT_CLIENT_REREGISTER: case IBV_EVENT_GID_CHANGE:
      set_num(es->env, e, "portNum", ev.element.port_num);
      break;
    default:
      break;
    }
    ibv_ack_async_event(&ev);
    call_js(es, w->callback, 1, &e);
    napi_close_handle_scope(es->env, scope);
  }
}

static napi_value device_watch_async(napi_env env, napi_callback_info info) {
  METHOD(device_obj, K_DEVICE, 1);
  napi_valuetype type;
  napi_typeof(env, argv[0], &type);
  if (type != napi_function) return throw_type(env, "watchAsyncEvents(callback): callback must be a function");
  int err = watcher_start(self->base.env, &self->w, &self->base, self->ctx->async_fd, argv[0], device_async_readable);
  if (err) return throw_errno(env, err, "Device.watchAsyncEvents");
  return undefined(env);
}

static napi_value device_unwatch_async(napi_env env, napi_callback_info info) {
  METHOD(device_obj, K_DEVICE, 0);
  watcher_stop(&self->w);
  return undefined(env);
}

static napi_value device_alloc_pd(napi_env env, napi_callback_info info) {
  METHOD(device_obj, K_DEVICE, 0);
  struct ibv_pd *raw = ibv_alloc_pd(self->ctx);
  if (!raw) return throw_errno(env, errno ? errno : ENOMEM, "ibv_alloc_pd");
  pd_obj *pd = (pd_obj *)obj_new(self->base.env, K_PD, sizeof(pd_obj));
  if (!pd) {
    ibv_dealloc_pd(raw);
    return throw_errno(env, ENOMEM, "ibv_alloc_pd");
  }
  pd->pd = raw;
  pd->dev = self;
  return wrap_new(self->base.env, &pd->base, false);
}

static void compchan_free_native(obj *o) {
  compchan_obj *cc = (compchan_obj *)o;
  if (cc->cc) ibv_destroy_comp_channel(cc->cc);
  cc->cc = NULL;
}

static napi_value device_create_comp_channel(napi_env env, napi_callback_info info) {
  METHOD(device_obj, K_DEVICE, 0);
  struct ibv_comp_channel *raw = ibv_create_comp_channel(self->ctx);
  if (!raw) return throw_errno(env, errno ? errno : ENOMEM, "ibv_create_comp_channel");
  compchan_obj *cc = (compchan_obj *)obj_new(self->base.env, K_COMPCHAN, sizeof(compchan_obj));
  if (!cc) {
    ibv_destroy_comp_channel(raw);
    return throw_errno(env, ENOMEM, "ibv_create_comp_channel");
  }
  cc->cc = raw;
  return wrap_new(self->base.env, &cc->base, false);
}

/* createCq(entries, compChannel?, vector?) */
static napi_value device_create_cq(napi_env env, napi_callback_info info) {
  METHOD(device_obj, K_DEVICE, 3);
  uint32_t entries, vector = 0;
  if (!get_u32(env, argv[0], &entries) || entries == 0) return throw_type(env, "createCq(entries): entries must be a positive number");
  compchan_obj *cc = NULL;
  if (!is_nullish(env, argv[1])) {
    cc = (compchan_obj *)unwrap_arg(env, argv[1], K_COMPCHAN, "compChannel");
    if (!cc) return NULL;
  }
  if (!is_nullish(env, argv[2]) && !get_u32(env, argv[2], &vector)) return throw_type(env, "vector must be a number");
  struct ibv_cq *raw = ibv_create_cq(self->ctx, (int)entries, NULL, cc ? cc->cc : NULL, (int)vector);
  if (!raw) return throw_errno(env, errno ? errno : ENOMEM, "ibv_create_cq");
  cq_obj *cq = (cq_obj *)obj_new(self->base.env, K_CQ, sizeof(cq_obj));
  if (!cq) {
    ibv_destroy_cq(raw);
    return throw_errno(env, ENOMEM, "ibv_create_cq");
  }
  cq->cq = raw;
  cq->entries = raw->cqe;
  return wrap_new(self->base.env, &cq->base, false);
}

/* ---- protection domain, memory regions, SRQ ----------------------------- */

static napi_value pd_dealloc(napi_env env, napi_callback_info info) {
  METHOD(pd_obj, K_PD, 0);
  int rc = ibv_dealloc_pd(self->pd);
  if (rc) return throw_errno(env, rc, "ibv_dealloc_pd");
  self->pd = NULL;
  release_resource(&self->base);
  return undefined(env);
}

static uint32_t mr_slot(env_state *es) {
  for (uint32_t i = 0; i < es->mr_capacity; i++) {
    if (!es->mrs[i]) return i;
  }
  uint32_t capacity = es->mr_capacity ? es->mr_capacity * 2 : 16;
  mr_obj **grown = realloc(es->mrs, capacity * sizeof *grown);
  if (!grown) return UINT32_MAX;
  memset(grown + es->mr_capacity, 0, (capacity - es->mr_capacity) * sizeof *grown);
  uint32_t slot = es->mr_capacity;
  es->mrs = grown;
  es->mr_capacity = capacity;
  return slot;
}

/* registerMemory(view, access): view is a Uint8Array (or any typed array) over a
 * SharedArrayBuffer. A plain ArrayBuffer is refused: it can be detached or transferred
 * (its memory freed or moved) while the device still writes into it; a
 * SharedArrayBuffer never moves, and the reference kept here keeps it alive. */
static napi_value pd_register_memory(napi_env env, napi_callback_info info) {
  METHOD(pd_obj, K_PD, 2);
  bool is_typed = false;
  napi_is_typedarray(env, argv[0], &is_typed);
  if (!is_typed) return throw_type(env, "registerMemory(view, access): view must be a typed array over a SharedArrayBuffer");
  napi_typedarray_type type;
  size_t count, offset;
  void *data;
  napi_value buffer;
  napi_get_typedarray_info(env, argv[0], &type, &count, &data, &buffer, &offset);
  bool plain = false;
  napi_is_arraybuffer(env, buffer, &plain);
  if (plain)
    return throw_type(env, "registerMemory: the view's buffer is an ArrayBuffer, which can be detached or "
                           "transferred while registered; use a SharedArrayBuffer");
  size_t length;
  if (!get_bytes(env, argv[0], "view", &data, &length)) return NULL;
  if (length == 0) return throw_type(env, "registerMemory: the view is empty");
  uint32_t access;
  if (!get_u32(env, argv[1], &access)) return throw_type(env, "registerMemory: access must be a number (ACCESS_* flags)");
  env_state *es = self->base.env;
  uint32_t slot = mr_slot(es);
  if (slot == UINT32_MAX) return throw_errno(env, ENOMEM, "ibv_reg_mr");
  struct ibv_mr *raw = ibv_reg_mr(self->pd, data, length, (int)access);
  if (!raw) return throw_errno(env, errno ? errno : ENOMEM, "ibv_reg_mr");
  mr_obj *mr = (mr_obj *)obj_new(es, K_MR, sizeof(mr_obj));
  if (!mr) {
    ibv_dereg_mr(raw);
    return throw_errno(env, ENOMEM, "ibv_reg_mr");
  }
  mr->mr = raw;
  mr->pd = self;
  mr->addr = data;
  mr->length = length;
  mr->index = slot;
  napi_create_reference(env, argv[0], 1, &mr->memory);
  es->mrs[slot] = mr;
  return wrap_new(es, &mr->base, false);
}

static napi_value pd_create_srq(napi_env env, napi_callback_info info) {
  METHOD(pd_obj, K_PD, 1);
  struct ibv_srq_init_attr attr;
  memset(&attr, 0, sizeof attr);
  uint32_t v;
  if (!opt_u32(env, argv[0], "maxWr", 256, &v)) return NULL;
  attr.attr.max_wr = v;
  if (!opt_u32(env, argv[0], "maxSge", 1, &v)) return NULL;
  attr.attr.max_sge = v;
  if (!opt_u32(env, argv[0], "srqLimit", 0, &v)) return NULL;
  attr.attr.srq_limit = v;
  struct ibv_srq *raw = ibv_create_srq(self->pd, &attr);
  if (!raw) return throw_errno(env, errno ? errno : ENOMEM, "ibv_create_srq");
  srq_obj *srq = (srq_obj *)obj_new(self->base.env, K_SRQ, sizeof(srq_obj));
  if (!srq) {
    ibv_destroy_srq(raw);
    return throw_errno(env, ENOMEM, "ibv_create_srq");
  }
  srq->srq = raw;
  srq->pd = self;
  napi_value wrapper = wrap_new(self->base.env, &srq->base, false);
  if (wrapper) {
    set_num(env, wrapper, "maxWr", attr.attr.max_wr);
    set_num(env, wrapper, "maxSge", attr.attr.max_sge);
  }
  return wrapper;
}

static void mr_release(mr_obj *mr) {
  env_state *es = mr->base.env;
  if (es && mr->index < es->mr_capacity && es->mrs[mr->index] == mr) es->mrs[mr->index] = NULL;
  if (mr->memory && es && !es->tearing_down) napi_delete_reference(es->env, mr->memory);
  mr->memory = NULL;
  release_resource(&mr->base);
}

static napi_value mr_deregister(napi_env env, napi_callback_info info) {
  METHOD(mr_obj, K_MR, 0);
  int rc = ibv_dereg_mr(self->mr);
  if (rc) return throw_errno(env, rc, "ibv_dereg_mr");
  self->mr = NULL;
  mr_release(self);
  return undefined(env);
}

static napi_value mr_index(napi_env env, napi_callback_info info) {
  METHOD(mr_obj, K_MR, 0);
  return num(env, self->index);
}
static napi_value mr_lkey(napi_env env, napi_callback_info info) {
  METHOD(mr_obj, K_MR, 0);
  return num(env, self->mr->lkey);
}
static napi_value mr_rkey(napi_env env, napi_callback_info info) {
  METHOD(mr_obj, K_MR, 0);
  return num(env, self->mr->rkey);
}
static napi_value mr_length(napi_env env, napi_callback_info info) {
  METHOD(mr_obj, K_MR, 0);
  return num(env, (double)self->length);
}
static napi_value mr_address(napi_env env, napi_callback_info info) {
  METHOD(mr_obj, K_MR, 0);
  napi_value value;
  napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)self->addr, &value);
  return value;
}

/* ---- completion channel ------------------------------------------------- */

/* Reads and acknowledges every pending CQ event, then tells JS once: the JS side polls
 * its CQs and asks for the next notification. */
static void compchan_readable(uv_poll_t *handle, int status, int events) {
  watcher *w = handle->data;
  compchan_obj *cc = (compchan_obj *)w->owner;
  env_state *es = cc->base.env;
  int n = 0;
  struct ibv_cq *cq;
  void *context;
  while (ibv_get_cq_event(cc->cc, &cq, &context) == 0) {
    ibv_ack_cq_events(cq, 1);
    n++;
  }
  if (n == 0 || !w->open || w->closing) return;
  napi_handle_scope scope;
  napi_open_handle_scope(es->env, &scope);
  call_js(es, w->callback, 0, NULL);
  napi_close_handle_scope(es->env, scope);
}

static napi_value compchan_start(napi_env env, napi_callback_info info) {
  METHOD(compchan_obj, K_COMPCHAN, 1);
  napi_valuetype type;
  napi_typeof(env, argv[0], &type);
  if (type != napi_function) return throw_type(env, "start(callback): callback must be a function");
  int err = watcher_start(self->base.env, &self->w, &self->base, self->cc->fd, argv[0], compchan_readable);
  if (err) return throw_errno(env, err, "CompletionChannel.start");
  return undefined(env);
}

static napi_value compchan_stop(napi_env env, napi_callback_info info) {
  METHOD(compchan_obj, K_COMPCHAN, 0);
  watcher_stop(&self->w);
  return undefined(env);
}

static napi_value compchan_ref(napi_env env, napi_callback_info info) {
  METHOD(compchan_obj, K_COMPCHAN, 0);
  watcher_set_ref(&self->w, true);
  return undefined(env);
}

static napi_value compchan_unref(napi_env env, napi_callback_info info) {
  METHOD(compchan_obj, K_COMPCHAN, 0);
  watcher_set_ref(&self->w, false);
  return undefined(env);
}

static napi_value compchan_fd(napi_env env, napi_callback_info info) {
  METHOD(compchan_obj, K_COMPCHAN, 0);
  return num(env, self->cc->fd);
}

static void compchan_destroy(compchan_obj *cc) {
  cc->base.alive = false;
  obj_unlink(&cc->base);
  if (cc->w.open) {
    cc->w.after_close = compchan_free_native;
    watcher_stop(&cc->w);
  } else {
    compchan_free_native(&cc->base);
  }
  obj_release(&cc->base);
}

static napi_value compchan_destroy_js(napi_env env, napi_callback_info info) {
  METHOD(compchan_obj, K_COMPCHAN, 0);
  compchan_destroy(self);
  return undefined(env);
}

/* ---- completion queue --------------------------------------------------- */

/* poll(out, max): up to max completions into out (a Uint32Array, WC_WORDS per
 * completion); returns how many, or -errno. Allocates nothing. */
static napi_value cq_poll(napi_env env, napi_callback_info info) {
  METHOD(cq_obj, K_CQ, 2);
  napi_typedarray_type type;
  size_t length, offset;
  uint32_t *out;
  napi_value buffer;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, (void **)&out, &buffer, &offset) != napi_ok ||
      type != napi_uint32_array)
    return throw_type(env, "poll(out, max): out must be a Uint32Array");
  uint32_t max;
  if (!get_u32(env, argv[1], &max)) return throw_type(env, "poll(out, max): max must be a number");
  if (max > length / WC_WORDS) max = (uint32_t)(length / WC_WORDS);
  env_state *es = self->base.env;
  uint32_t total = 0;
  while (total < max) {
    int want = (int)(max - total < POLL_BATCH ? max - total : POLL_BATCH);
    int n = ibv_poll_cq(self->cq, want, es->wc);
    if (n < 0) return num(env, n);
    for (int i = 0; i < n; i++) {
      const struct ibv_wc *wc = &es->wc[i];
      uint32_t *w = out + (size_t)(total + i) * WC_WORDS;
      w[WC_ID_LO] = (uint32_t)wc->wr_id;
      w[WC_ID_HI] = (uint32_t)(wc->wr_id >> 32);
      w[WC_STATUS] = wc->status;
      w[WC_OPCODE] = wc->opcode;
      w[WC_BYTE_LEN] = wc->byte_len;
      w[WC_QP_NUM] = wc->qp_num;
      w[WC_FLAGS] = wc->wc_flags;
      w[WC_IMM_OR_INV] = (wc->wc_flags & IBV_WC_WITH_INV) ? wc->invalidated_rkey
                         : (wc->wc_flags & IBV_WC_WITH_IMM) ? ntohl(wc->imm_data)
                                                            : 0;
    }
    total += (uint32_t)n;
    if (n < want) break;
  }
  return num(env, total);
}

static napi_value cq_request_notify(napi_env env, napi_callback_info info) {
  METHOD(cq_obj, K_CQ, 1);
  bool solicited = false;
  if (!is_nullish(env, argv[0])) napi_get_value_bool(env, argv[0], &solicited);
  int rc = ibv_req_notify_cq(self->cq, solicited ? 1 : 0);
  if (rc) return throw_errno(env, rc, "ibv_req_notify_cq");
  return undefined(env);
}

static napi_value cq_entries(napi_env env, napi_callback_info info) {
  METHOD(cq_obj, K_CQ, 0);
  return num(env, self->entries);
}

static napi_value cq_destroy_js(napi_env env, napi_callback_info info) {
  METHOD(cq_obj, K_CQ, 0);
  int rc = ibv_destroy_cq(self->cq);
  if (rc) return throw_errno(env, rc, "ibv_destroy_cq");
  self->cq = NULL;
  release_resource(&self->base);
  return undefined(env);
}

/* ---- posting work requests ---------------------------------------------- */

static bool view_u32(napi_env env, napi_value value, uint32_t **words, size_t *length) {
  napi_typedarray_type type;
  size_t offset;
  napi_value buffer;
  if (napi_get_typedarray_info(env, value, &type, length, (void **)words, &buffer, &offset) != napi_ok ||
      type != napi_uint32_array) {
    throw_type(env, "work requests must be a Uint32Array (WR_WORDS words each)");
    return false;
  }
  return true;
}

/* The scatter/gather list of one work request; false when an entry names no MR of this
 * protection domain or reaches past its end. */
static bool build_sges(env_state *es, pd_obj *pd, const uint32_t *w, struct ibv_sge *sges, int *num) {
  uint32_t n = w[WR_NUM_SGE];
  if (n > WR_MAX_SGE) return false;
  for (uint32_t i = 0; i < n; i++) {
    const uint32_t *s = w + WR_HEADER_WORDS + 3 * i;
    uint32_t index = s[WR_SGE_MR];
    if (index >= es->mr_capacity) return false;
    mr_obj *mr = es->mrs[index];
    if (!mr || mr->pd != pd) return false;
    uint64_t end = (uint64_t)s[WR_SGE_OFFSET] + s[WR_SGE_LENGTH];
    if (end > mr->length) return false;
    sges[i].addr = (uint64_t)(uintptr_t)(mr->addr + s[WR_SGE_OFFSET]);
    sges[i].length = s[WR_SGE_LENGTH];
    sges[i].lkey = mr->mr->lkey;
  }
  *num = (int)n;
  return true;
}

static bool build_send(env_state *es, pd_obj *pd, const uint32_t *w, struct ibv_send_wr *wr, struct ibv_sge *sges) {
  memset(wr, 0, sizeof *wr);
  uint32_t opcode = w[WR_OPCODE];
  switch (opcode) {
  case IBV_WR_SEND: case IBV_WR_SEND_WITH_IMM: case IBV_WR_SEND_WITH_INV: case IBV_WR_RDMA_WRITE:
  case IBV_WR_RDMA_WRITE_WITH_IMM: case IBV_WR_RDMA_READ:
    break;
  default:
    return false;
  }
  if (!build_sges(es, pd, w, sges, &wr->num_sge)) return false;
  wr->wr_id = (uint64_t)w[WR_ID_LO] | ((uint64_t)w[WR_ID_HI] << 32);
  wr->sg_list = sges;
  wr->opcode = (enum ibv_wr_opcode)opcode;
  wr->send_flags = w[WR_FLAGS] & (IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED | IBV_SEND_INLINE);
  if (opcode == IBV_WR_SEND_WITH_INV)
    wr->invalidate_rkey = w[WR_IMM_OR_INV];
  else if (opcode == IBV_WR_SEND_WITH_IMM || opcode == IBV_WR_RDMA_WRITE_WITH_IMM)
    wr->imm_data = htonl(w[WR_IMM_OR_INV]);
  if (opcode == IBV_WR_RDMA_WRITE || opcode == IBV_WR_RDMA_WRITE_WITH_IMM || opcode == IBV_WR_RDMA_READ) {
    wr->wr.rdma.remote_addr = (uint64_t)w[WR_REMOTE_ADDR_LO] | ((uint64_t)w[WR_REMOTE_ADDR_HI] << 32);
    wr->wr.rdma.rkey = w[WR_RKEY];
  }
  return true;
}

static bool build_recv(env_state *es, pd_obj *pd, const uint32_t *w, struct ibv_recv_wr *wr, struct ibv_sge *sges) {
  memset(wr, 0, sizeof *wr);
  if (!build_sges(es, pd, w, sges, &wr->num_sge)) return false;
  wr->wr_id = (uint64_t)w[WR_ID_LO] | ((uint64_t)w[WR_ID_HI] << 32);
  wr->sg_list = sges;
  return true;
}


/* Posts count work requests from words, in batches; returns how many were posted and
 * leaves the errno of the first failure (EINVAL for a malformed record) in *error. */
static uint32_t post_all(env_state *es, pd_obj *pd, const uint32_t *words, uint32_t count, bool send,
                         struct ibv_qp *qp, struct ibv_srq *srq, int *error) {
  uint32_t done = 0;
  *error = 0;
  while (done < count) {
    uint32_t batch = count - done < POST_BATCH ? count - done : POST_BATCH;
    uint32_t built = 0;
    int invalid = 0;
    for (; built < batch; built++) {
      const uint32_t *w = words + (size_t)(done + built) * WR_WORDS;
      struct ibv_sge *sges = es->sge + (size_t)built * WR_MAX_SGE;
      bool ok = send ? build_send(es, pd, w, &es->send_wr[built], sges)
                     : build_recv(es, pd, w, &es->recv_wr[built], sges);
      if (!ok) {
        invalid = EINVAL;
        break;
      }
      if (built > 0) {
        if (send)
          es->send_wr[built - 1].next = &es->send_wr[built];
        else
          es->recv_wr[built - 1].next = &es->recv_wr[built];
      }
    }
    if (built > 0) {
      int rc;
      uint32_t accepted = built;
      if (send) {
        struct ibv_send_wr *bad = NULL;
        rc = ibv_post_send(qp, es->send_wr, &bad);
        if (rc) accepted = bad ? (uint32_t)(bad - es->send_wr) : 0;
      } else {
        struct ibv_recv_wr *bad = NULL;
        rc = qp ? ibv_post_recv(qp, es->recv_wr, &bad) : ibv_post_srq_recv(srq, es->recv_wr, &bad);
        if (rc) accepted = bad ? (uint32_t)(bad - es->recv_wr) : 0;
      }
      done += accepted;
      if (rc) {
        *error = rc;
        return done;
      }
    }
    if (invalid) {
      *error = invalid;
      return done;
    }
  }
  return done;
}

static napi_value post_common(napi_env env, napi_value *argv, env_state *es, pd_obj *pd, bool send,
                              struct ibv_qp *qp, struct ibv_srq *srq, int *last_error) {
  uint32_t *words;
  size_t length;
  uint32_t count;
  if (!view_u32(env, argv[0], &words, &length)) return NULL;
  if (!get_u32(env, argv[1], &count)) return throw_type(env, "count must be a number");
  if ((size_t)count * WR_WORDS > length) return throw_type(env, "count is larger than the work requests array holds");
  uint32_t posted = post_all(es, pd, words, count, send, qp, srq, last_error);
  return num(env, posted);
}

/* ---- queue pair ---------------------------------------------------------- */

static napi_value qp_post_send(napi_env env, napi_callback_info info) {
  METHOD(qp_obj, K_QP, 2);
  return post_common(env, argv, self->base.env, self->pd, true, self->qp, NULL, &self->last_error);
}

static napi_value qp_post_recv(napi_env env, napi_callback_info info) {
  METHOD(qp_obj, K_QP, 2);
  if (self->qp->srq) return throw_error(env, "QueuePair.postRecv: this queue pair receives through its SRQ");
  return post_common(env, argv, self->base.env, self->pd, false, self->qp, NULL, &self->last_error);
}

static napi_value qp_last_error(napi_env env, napi_callback_info info) {
  METHOD(qp_obj, K_QP, 0);
  return num(env, self->last_error);
}

static napi_value qp_num(napi_env env, napi_callback_info info) {
  METHOD(qp_obj, K_QP, 0);
  return num(env, self->qp->qp_num);
}

static napi_value qp_state(napi_env env, napi_callback_info info) {
  METHOD(qp_obj, K_QP, 0);
  struct ibv_qp_attr attr;
  struct ibv_qp_init_attr init;
  int rc = ibv_query_qp(self->qp, &attr, IBV_QP_STATE, &init);
  if (rc) return throw_errno(env, rc, "ibv_query_qp");
  return num(env, attr.qp_state);
}

/* Moves the QP to the error state: every outstanding work request completes with
 * WR_FLUSH_ERR, which is how a queue is drained before it is destroyed. */
static napi_value qp_to_error(napi_env env, napi_callback_info info) {
  METHOD(qp_obj, K_QP, 0);
  struct ibv_qp_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.qp_state = IBV_QPS_ERR;
  int rc = ibv_modify_qp(self->qp, &attr, IBV_QP_STATE);
  if (rc) return throw_errno(env, rc, "ibv_modify_qp");
  return undefined(env);
}

napi_value qp_create_on(napi_env env, env_state *es, id_obj *io, napi_value options) {
  napi_value value;
  pd_obj *pd;
  cq_obj *send_cq, *recv_cq;
  srq_obj *srq = NULL;
  if (!opt_obj(env, options, "pd", &value) || !value) return throw_type(env, "createQp: options.pd is required");
  if (!(pd = (pd_obj *)unwrap_arg(env, value, K_PD, "options.pd"))) return NULL;
  if (!opt_obj(env, options, "sendCq", &value) || !value) return throw_type(env, "createQp: options.sendCq is required");
  if (!(send_cq = (cq_obj *)unwrap_arg(env, value, K_CQ, "options.sendCq"))) return NULL;
  if (!opt_obj(env, options, "recvCq", &value) || !value) return throw_type(env, "createQp: options.recvCq is required");
  if (!(recv_cq = (cq_obj *)unwrap_arg(env, value, K_CQ, "options.recvCq"))) return NULL;
  if (!opt_obj(env, options, "srq", &value)) return NULL;
  if (value && !(srq = (srq_obj *)unwrap_arg(env, value, K_SRQ, "options.srq"))) return NULL;
  struct ibv_qp_init_attr attr;
  memset(&attr, 0, sizeof attr);
  uint32_t v;
  if (!opt_u32(env, options, "maxSendWr", 128, &v)) return NULL;
  attr.cap.max_send_wr = v;
  if (!opt_u32(env, options, "maxRecvWr", srq ? 0 : 128, &v)) return NULL;
  attr.cap.max_recv_wr = v;
  if (!opt_u32(env, options, "maxSendSge", 1, &v)) return NULL;
  attr.cap.max_send_sge = v;
  if (!opt_u32(env, options, "maxRecvSge", srq ? 0 : 1, &v)) return NULL;
  attr.cap.max_recv_sge = v;
  if (!opt_u32(env, options, "maxInlineData", 0, &v)) return NULL;
  attr.cap.max_inline_data = v;
  attr.qp_type = IBV_QPT_RC;
  attr.send_cq = send_cq->cq;
  attr.recv_cq = recv_cq->cq;
  attr.srq = srq ? srq->srq : NULL;
  attr.sq_sig_all = 0;
  if (rdma_create_qp(io->id, pd->pd, &attr) != 0) return throw_errno(env, errno, "rdma_create_qp");
  qp_obj *q = (qp_obj *)obj_new(es, K_QP, sizeof(qp_obj));
  if (!q) {
    rdma_destroy_qp(io->id);
    return throw_errno(env, ENOMEM, "rdma_create_qp");
  }
  q->qp = io->id->qp;
  q->id = io;
  q->pd = pd;
  io->qp = q;
  napi_value wrapper = wrap_new(es, &q->base, false);
  if (wrapper) {
    napi_value caps;
    napi_create_object(env, &caps);
    set_num(env, caps, "maxSendWr", attr.cap.max_send_wr);
    set_num(env, caps, "maxRecvWr", attr.cap.max_recv_wr);
    set_num(env, caps, "maxSendSge", attr.cap.max_send_sge);
    set_num(env, caps, "maxRecvSge", attr.cap.max_recv_sge);
    set_num(env, caps, "maxInlineData", attr.cap.max_inline_data);
    set_val(env, wrapper, "caps", caps);
  }
  return wrapper;
}

void qp_destroy(qp_obj *q) {
  if (q->id && q->id->id && q->id->id->qp) rdma_destroy_qp(q->id->id);
  if (q->id) q->id->qp = NULL;
  q->qp = NULL;
  q->id = NULL;
  release_resource(&q->base);
}

/* ---- shared receive queue ------------------------------------------------ */

static napi_value srq_post_recv(napi_env env, napi_callback_info info) {
  METHOD(srq_obj, K_SRQ, 2);
  return post_common(env, argv, self->base.env, self->pd, false, NULL, self->srq, &self->last_error);
}

static napi_value srq_last_error(napi_env env, napi_callback_info info) {
  METHOD(srq_obj, K_SRQ, 0);
  return num(env, self->last_error);
}

static napi_value srq_destroy_js(napi_env env, napi_callback_info info) {
  METHOD(srq_obj, K_SRQ, 0);
  int rc = ibv_destroy_srq(self->srq);
  if (rc) return throw_errno(env, rc, "ibv_destroy_srq");
  self->srq = NULL;
  release_resource(&self->base);
  return undefined(env);
}

/* ---- teardown and classes ----------------------------------------------- */

/* Releases o's resource at environment teardown (no JS may run). */
void verbs_destroy(obj *o) {
  switch (o->kind) {
  case K_QP:
    qp_destroy((qp_obj *)o);
    break;
  case K_SRQ:
    ibv_destroy_srq(((srq_obj *)o)->srq);
    release_resource(o);
    break;
  case K_CQ:
    ibv_destroy_cq(((cq_obj *)o)->cq);
    release_resource(o);
    break;
  case K_MR:
    ibv_dereg_mr(((mr_obj *)o)->mr);
    mr_release((mr_obj *)o);
    break;
  case K_PD:
    ibv_dealloc_pd(((pd_obj *)o)->pd);
    release_resource(o);
    break;
  case K_COMPCHAN:
    compchan_destroy((compchan_obj *)o);
    break;
  case K_DEVICE:
    watcher_stop(&((device_obj *)o)->w);
    release_resource(o);
    break;
  default:
    break;
  }
}

#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}
#define GET(name, fn) {name, NULL, NULL, fn, NULL, NULL, napi_enumerable, NULL}

void verbs_define(napi_env env, env_state *es, napi_value exports) {
  napi_property_descriptor device_props[] = {
      GET("name", device_name),
      GET("guid", device_guid),
      FN("query", device_query),
      FN("queryPort", device_query_port),
      FN("allocPd", device_alloc_pd),
      FN("createCompChannel", device_create_comp_channel),
      FN("createCq", device_create_cq),
      FN("watchAsyncEvents", device_watch_async),
      FN("stopAsyncEvents", device_unwatch_async),
  };
  set_val(env, exports, "Device", define_class(env, es, K_DEVICE, sizeof device_props / sizeof device_props[0], device_props));
  napi_property_descriptor pd_props[] = {
      FN("registerMemory", pd_register_memory),
      FN("createSrq", pd_create_srq),
      FN("dealloc", pd_dealloc),
  };
  set_val(env, exports, "ProtectionDomain", define_class(env, es, K_PD, sizeof pd_props / sizeof pd_props[0], pd_props));
  napi_property_descriptor mr_props[] = {
      GET("index", mr_index), GET("lkey", mr_lkey), GET("rkey", mr_rkey),
      GET("length", mr_length), GET("address", mr_address), FN("deregister", mr_deregister),
  };
  set_val(env, exports, "MemoryRegion", define_class(env, es, K_MR, sizeof mr_props / sizeof mr_props[0], mr_props));
  napi_property_descriptor cc_props[] = {
      GET("fd", compchan_fd), FN("start", compchan_start), FN("stop", compchan_stop),
      FN("ref", compchan_ref), FN("unref", compchan_unref), FN("destroy", compchan_destroy_js),
  };
  set_val(env, exports, "CompletionChannel", define_class(env, es, K_COMPCHAN, sizeof cc_props / sizeof cc_props[0], cc_props));
  napi_property_descriptor cq_props[] = {
      FN("poll", cq_poll), FN("requestNotify", cq_request_notify), GET("entries", cq_entries),
      FN("destroy", cq_destroy_js),
  };
  set_val(env, exports, "CompletionQueue", define_class(env, es, K_CQ, sizeof cq_props / sizeof cq_props[0], cq_props));
  napi_property_descriptor srq_props[] = {
      FN("postRecv", srq_post_recv), GET("lastError", srq_last_error), FN("destroy", srq_destroy_js),
  };
  set_val(env, exports, "SharedReceiveQueue", define_class(env, es, K_SRQ, sizeof srq_props / sizeof srq_props[0], srq_props));
  napi_property_descriptor qp_props[] = {
      FN("postSend", qp_post_send), FN("postRecv", qp_post_recv), GET("lastError", qp_last_error),
      GET("qpNum", qp_num), FN("state", qp_state), FN("toError", qp_to_error),
  };
  set_val(env, exports, "QueuePair", define_class(env, es, K_QP, sizeof qp_props / sizeof qp_props[0], qp_props));
}
