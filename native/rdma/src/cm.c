/*
 * rdma_cm: event channels (their fd watched by libuv, events delivered to JS as
 * objects) and CM ids (bind, listen, resolve, connect, accept, reject, disconnect,
 * migration to another channel, hand-over to another thread).
 */
#include "addon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Channels by token, and CM ids handed over but not yet adopted (global lock). */
static channel_obj *all_channels;
static id_obj *in_transit;

static napi_value id_wrapper_for_event(env_state *es, id_obj *io);

/* ---- addresses ---------------------------------------------------------- */

static bool parse_address(napi_env env, napi_value address, napi_value port, struct sockaddr_storage *out) {
  char text[INET6_ADDRSTRLEN + 2];
  size_t length = 0;
  uint32_t port_number = 0;
  memset(out, 0, sizeof *out);
  if (napi_get_value_string_utf8(env, address, text, sizeof text, &length) != napi_ok) {
    throw_type(env, "address must be a string (an IPv4 or IPv6 address)");
    return false;
  }
  if (port && !is_nullish(env, port) && (!get_u32(env, port, &port_number) || port_number > 65535)) {
    throw_type(env, "port must be a number from 0 to 65535");
    return false;
  }
  struct sockaddr_in *in4 = (struct sockaddr_in *)out;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port_number);
    return true;
  }
  if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port_number);
    return true;
  }
  char message[128];
  snprintf(message, sizeof message, "not an IPv4 or IPv6 address: '%s'", text);
  throw_type(env, message);
  return false;
}

static napi_value address_object(napi_env env, struct sockaddr *sa) {
  char text[INET6_ADDRSTRLEN];
  napi_value result;
  if (!sa) return undefined(env);
  if (sa->sa_family == AF_INET) {
    struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in4->sin_addr, text, sizeof text);
    napi_create_object(env, &result);
    set_str(env, result, "address", text);
    set_num(env, result, "port", ntohs(in4->sin_port));
    set_str(env, result, "family", "IPv4");
    return result;
  }
  if (sa->sa_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    napi_create_object(env, &result);
    set_str(env, result, "address", text);
    set_num(env, result, "port", ntohs(in6->sin6_port));
    set_str(env, result, "family", "IPv6");
    return result;
  }
  napi_get_null(env, &result);
  return result;
}

/* ---- event channel ------------------------------------------------------ */

static void channel_free_native(obj *o) {
  channel_obj *ch = (channel_obj *)o;
  if (ch->ch) rdma_destroy_event_channel(ch->ch);
  ch->ch = NULL;
}

static napi_value event_object(env_state *es, struct rdma_cm_event *ev, id_obj *io, id_obj *listen) {
  napi_env env = es->env;
  napi_value e, value;
  napi_create_object(env, &e);
  set_num(env, e, "type", ev->event);
  set_str(env, e, "name", rdma_event_str(ev->event));
  set_num(env, e, "status", ev->status);
  value = io ? id_wrapper_for_event(es, io) : NULL;
  if (!value) napi_get_null(env, &value);
  set_val(env, e, "id", value);
  value = listen ? id_wrapper_for_event(es, listen) : NULL;
  if (!value) napi_get_null(env, &value);
  set_val(env, e, "listenId", value);
  const struct rdma_conn_param *conn = &ev->param.conn;
  bool has_conn = ev->event == RDMA_CM_EVENT_CONNECT_REQUEST || ev->event == RDMA_CM_EVENT_ESTABLISHED ||
                  ev->event == RDMA_CM_EVENT_REJECTED || ev->event == RDMA_CM_EVENT_CONNECT_RESPONSE;
  if (has_conn && conn->private_data && conn->private_data_len) {
    void *copy;
    napi_create_buffer_copy(env, conn->private_data_len, conn->private_data, &copy, &value);
  } else {
    napi_get_null(env, &value);
  }
  set_val(env, e, "privateData", value);
  set_num(env, e, "responderResources", has_conn ? conn->responder_resources : 0);
  set_num(env, e, "initiatorDepth", has_conn ? conn->initiator_depth : 0);
  set_num(env, e, "flowControl", has_conn ? conn->flow_control : 0);
  set_num(env, e, "retryCount", has_conn ? conn->retry_count : 0);
  set_num(env, e, "rnrRetryCount", has_conn ? conn->rnr_retry_count : 0);
  set_num(env, e, "srq", has_conn ? conn->srq : 0);
  set_num(env, e, "qpNum", has_conn ? conn->qp_num : 0);
  return e;
}

/* The id an event names, as an object of this environment: a connect request's new id
 * is created here; an id handed over to this channel is adopted here implicitly. */
static id_obj *event_id(env_state *es, channel_obj *ch, struct rdma_cm_id *id, bool is_new) {
  if (!id) return NULL;
  id_obj *io = id->context;
  if (is_new) {
    io = (id_obj *)obj_new(es, K_ID, sizeof(id_obj));
    if (!io) return NULL;
    io->id = id;
    io->chan = ch;
    id->context = io;
    global_lock();
    ch->ids++;
    global_unlock();
    return io;
  }
  if (!io) return NULL;
  global_lock();
  if (!io->base.env && io->token && io->chan == ch) obj_link(es, &io->base);
  global_unlock();
  return io->base.env == es ? io : NULL;
}

static napi_value id_wrapper_for_event(env_state *es, id_obj *io) {
  napi_value value = NULL;
  if (io->base.self) napi_get_reference_value(es->env, io->base.self, &value);
  if (value) return value;
  return wrap_new(es, &io->base, io->base.alive);
}

static void channel_readable(uv_poll_t *handle, int status, int events) {
  watcher *w = handle->data;
  channel_obj *ch = (channel_obj *)w->owner;
  env_state *es = ch->base.env;
  for (int i = 0; i < EVENTS_PER_WAKEUP && w->open && !w->closing; i++) {
    struct rdma_cm_event *ev = NULL;
    if (rdma_get_cm_event(ch->ch, &ev) != 0) break; /* EAGAIN: drained */
    napi_handle_scope scope;
    napi_open_handle_scope(es->env, &scope);
    bool is_new = ev->event == RDMA_CM_EVENT_CONNECT_REQUEST;
    id_obj *io = event_id(es, ch, ev->id, is_new);
    id_obj *listen = ev->listen_id ? event_id(es, ch, ev->listen_id, false) : NULL;
    if (is_new && io) {
      /* the new id's wrapper is strong: it lives until destroy() */
      napi_value wrapper = wrap_new(es, &io->base, true);
      (void)wrapper;
    }
    if (is_new && !io) {
      /* no memory for the new id: refuse the connection rather than leak it */
      struct rdma_cm_id *orphan = ev->id;
      rdma_reject(orphan, NULL, 0);
      rdma_ack_cm_event(ev);
      rdma_destroy_id(orphan);
      napi_close_handle_scope(es->env, scope);
      continue;
    }
    napi_value e = event_object(es, ev, io, listen);
    /* acknowledged before JS runs: the callback may destroy the id, which waits
     * for its events to be acknowledged */
    rdma_ack_cm_event(ev);
    call_js(es, w->callback, 1, &e);
    napi_close_handle_scope(es->env, scope);
  }
}

static napi_value channel_start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  channel_obj *ch = (channel_obj *)unwrap_this(env, info, K_CHANNEL, &argc, argv);
  if (!ch) return NULL;
  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  if (type != napi_function) return throw_type(env, "start(callback): callback must be a function");
  int err = watcher_start(ch->base.env, &ch->w, &ch->base, ch->ch->fd, argv[0], channel_readable);
  if (err) return throw_errno(env, err, "CmEventChannel.start");
  return undefined(env);
}

static napi_value channel_stop(napi_env env, napi_callback_info info) {
  channel_obj *ch = (channel_obj *)unwrap_this(env, info, K_CHANNEL, NULL, NULL);
  if (!ch) return NULL;
  watcher_stop(&ch->w);
  return undefined(env);
}

static napi_value channel_ref(napi_env env, napi_callback_info info) {
  channel_obj *ch = (channel_obj *)unwrap_this(env, info, K_CHANNEL, NULL, NULL);
  if (!ch) return NULL;
  watcher_set_ref(&ch->w, true);
  return undefined(env);
}

static napi_value channel_unref(napi_env env, napi_callback_info info) {
  channel_obj *ch = (channel_obj *)unwrap_this(env, info, K_CHANNEL, NULL, NULL);
  if (!ch) return NULL;
  watcher_set_ref(&ch->w, false);
  return undefined(env);
}

static napi_value channel_fd(napi_env env, napi_callback_info info) {
  channel_obj *ch = (channel_obj *)unwrap_this(env, info, K_CHANNEL, NULL, NULL);
  return ch ? num(env, ch->ch->fd) : NULL;
}

static napi_value channel_token(napi_env env, napi_callback_info info) {
  channel_obj *ch = (channel_obj *)unwrap_this(env, info, K_CHANNEL, NULL, NULL);
  return ch ? num(env, ch->token) : NULL;
}

static napi_value channel_create_id(napi_env env, napi_callback_info info) {
  channel_obj *ch = (channel_obj *)unwrap_this(env, info, K_CHANNEL, NULL, NULL);
  if (!ch) return NULL;
  env_state *es = ch->base.env;
  id_obj *io = (id_obj *)obj_new(es, K_ID, sizeof(id_obj));
  if (!io) return throw_errno(env, ENOMEM, "rdma_create_id");
  if (rdma_create_id(ch->ch, &io->id, io, RDMA_PS_TCP) != 0) {
    int err = errno;
    obj_unlink(&io->base);
    io->base.alive = false;
    obj_release(&io->base);
    return throw_errno(env, err, "rdma_create_id");
  }
  io->chan = ch;
  global_lock();
  ch->ids++;
  global_unlock();
  return wrap_new(es, &io->base, true);
}

static void channel_destroy(channel_obj *ch) {
  global_lock();
  for (channel_obj **p = &all_channels; *p; p = &(*p)->next_global) {
    if (*p == ch) {
      *p = ch->next_global;
      break;
    }
  }
  global_unlock();
  ch->base.alive = false;
  obj_unlink(&ch->base);
  if (ch->w.open) {
    ch->w.after_close = channel_free_native;
    watcher_stop(&ch->w);
  } else {
    channel_free_native(&ch->base);
  }
  obj_release(&ch->base);
}

static napi_value channel_destroy_js(napi_env env, napi_callback_info info) {
  channel_obj *ch = (channel_obj *)unwrap_this(env, info, K_CHANNEL, NULL, NULL);
  if (!ch) return NULL;
  global_lock();
  int ids = ch->ids;
  global_unlock();
  if (ids > 0) {
    char message[160];
    snprintf(message, sizeof message,
             "CmEventChannel.destroy: %d CM id(s) still deliver events here; destroy or migrate them first", ids);
    return throw_error(env, message);
  }
  channel_destroy(ch);
  return undefined(env);
}

napi_value cm_create_event_channel(napi_env env, napi_callback_info info) {
  env_state *es = env_of(env);
  struct rdma_event_channel *raw = rdma_create_event_channel();
  if (!raw) return throw_errno(env, errno, "rdma_create_event_channel");
  channel_obj *ch = (channel_obj *)obj_new(es, K_CHANNEL, sizeof(channel_obj));
  if (!ch) {
    rdma_destroy_event_channel(raw);
    return throw_errno(env, ENOMEM, "rdma_create_event_channel");
  }
  ch->ch = raw;
  global_lock();
  ch->token = next_token();
  ch->next_global = all_channels;
  all_channels = ch;
  global_unlock();
  return wrap_new(es, &ch->base, false);
}

/* ---- CM id -------------------------------------------------------------- */

static void id_destroy(id_obj *io) {
  if (io->qp) qp_destroy(io->qp);
  global_lock();
  if (io->token) {
    for (id_obj **p = &in_transit; *p; p = &(*p)->next_transit) {
      if (*p == io) {
        *p = io->next_transit;
        break;
      }
    }
    io->token = 0;
  }
  if (io->chan) io->chan->ids--;
  global_unlock();
  if (io->id) rdma_destroy_id(io->id);
  io->id = NULL;
  io->base.alive = false;
  obj_unlink(&io->base);
  if (io->base.env && !io->base.env->tearing_down) make_weak(io->base.env->env, &io->base);
  obj_release(&io->base);
}

void cm_destroy(obj *o) {
  if (o->kind == K_ID)
    id_destroy((id_obj *)o);
  else if (o->kind == K_CHANNEL)
    channel_destroy((channel_obj *)o);
}

#define ID_METHOD(name, argc_max)                                                                          \
  size_t argc = argc_max;                                                                                  \
  napi_value argv[argc_max > 0 ? argc_max : 1];                                                            \
  id_obj *io = (id_obj *)unwrap_this(env, info, K_ID, &argc, argv);                                        \
  if (!io) return NULL;                                                                                    \
  fill_undefined(env, argc, argv, argc_max);

static napi_value id_bind(napi_env env, napi_callback_info info) {
  ID_METHOD(bind, 2);
  struct sockaddr_storage sa;
  if (!parse_address(env, argv[0], argv[1], &sa)) return NULL;
  if (rdma_bind_addr(io->id, (struct sockaddr *)&sa) != 0) return throw_errno(env, errno, "rdma_bind_addr");
  return undefined(env);
}

static napi_value id_listen(napi_env env, napi_callback_info info) {
  ID_METHOD(listen, 1);
  uint32_t backlog = 128;
  if (!is_nullish(env, argv[0]) && !get_u32(env, argv[0], &backlog)) return throw_type(env, "backlog must be a number");
  if (rdma_listen(io->id, (int)backlog) != 0) return throw_errno(env, errno, "rdma_listen");
  return undefined(env);
}

static napi_value id_resolve_addr(napi_env env, napi_callback_info info) {
  ID_METHOD(resolveAddr, 4);
  struct sockaddr_storage dst, src;
  uint32_t timeout_ms = 2000;
  if (!parse_address(env, argv[0], argv[1], &dst)) return NULL;
  if (!is_nullish(env, argv[2]) && !get_u32(env, argv[2], &timeout_ms)) return throw_type(env, "timeoutMs must be a number");
  bool has_src = !is_nullish(env, argv[3]);
  if (has_src && !parse_address(env, argv[3], NULL, &src)) return NULL;
  if (rdma_resolve_addr(io->id, has_src ? (struct sockaddr *)&src : NULL, (struct sockaddr *)&dst, (int)timeout_ms) != 0)
    return throw_errno(env, errno, "rdma_resolve_addr");
  return undefined(env);
}

static napi_value id_resolve_route(napi_env env, napi_callback_info info) {
  ID_METHOD(resolveRoute, 1);
  uint32_t timeout_ms = 2000;
  if (!is_nullish(env, argv[0]) && !get_u32(env, argv[0], &timeout_ms)) return throw_type(env, "timeoutMs must be a number");
  if (rdma_resolve_route(io->id, (int)timeout_ms) != 0) return throw_errno(env, errno, "rdma_resolve_route");
  return undefined(env);
}

/* rdma_conn_param from { privateData, responderResources, initiatorDepth, flowControl,
 * retryCount, rnrRetryCount }. */
static bool conn_param(napi_env env, napi_value options, struct rdma_conn_param *param) {
  uint32_t v;
  napi_value data;
  memset(param, 0, sizeof *param);
  if (!opt_obj(env, options, "privateData", &data)) return false;
  if (data) {
    void *bytes;
    size_t length;
    if (!get_bytes(env, data, "privateData", &bytes, &length)) return false;
    if (length > 255) {
      throw_type(env, "privateData is longer than 255 bytes");
      return false;
    }
    param->private_data = bytes;
    param->private_data_len = (uint8_t)length;
  }
#define U8(field, name, fallback)                                                                          \
  if (!opt_u32(env, options, name, fallback, &v)) return false;                                            \
  if (v > 255) {                                                                                           \
    throw_type(env, "option " name " must be below 256");                                                  \
    return false;                                                                                          \
  }                                                                                                        \
  param->field = (uint8_t)v;
  U8(responder_resources, "responderResources", 0);
  U8(initiator_depth, "initiatorDepth", 0);
  U8(flow_control, "flowControl", 1);
  U8(retry_count, "retryCount", 7);
  U8(rnr_retry_count, "rnrRetryCount", 7);
#undef U8
  return true;
}

static napi_value id_connect(napi_env env, napi_callback_info info) {
  ID_METHOD(connect, 1);
  struct rdma_conn_param param;
  if (!conn_param(env, argv[0], &param)) return NULL;
  if (rdma_connect(io->id, &param) != 0) return throw_errno(env, errno, "rdma_connect");
  return undefined(env);
}

static napi_value id_accept(napi_env env, napi_callback_info info) {
  ID_METHOD(accept, 1);
  struct rdma_conn_param param;
  if (!conn_param(env, argv[0], &param)) return NULL;
  if (rdma_accept(io->id, &param) != 0) return throw_errno(env, errno, "rdma_accept");
  return undefined(env);
}

static napi_value id_reject(napi_env env, napi_callback_info info) {
  ID_METHOD(reject, 1);
  void *bytes = NULL;
  size_t length = 0;
  if (!is_nullish(env, argv[0]) && !get_bytes(env, argv[0], "privateData", &bytes, &length)) return NULL;
  if (length > 255) return throw_type(env, "privateData is longer than 255 bytes");
  if (rdma_reject(io->id, bytes, (uint8_t)length) != 0) return throw_errno(env, errno, "rdma_reject");
  return undefined(env);
}

static napi_value id_disconnect(napi_env env, napi_callback_info info) {
  ID_METHOD(disconnect, 0);
  if (rdma_disconnect(io->id) != 0) return throw_errno(env, errno, "rdma_disconnect");
  return undefined(env);
}

static napi_value id_create_qp(napi_env env, napi_callback_info info) {
  ID_METHOD(createQp, 1);
  if (io->qp) return throw_errno(env, EBUSY, "rdma_create_qp");
  return qp_create_on(env, io->base.env, io, argv[0]);
}

static napi_value id_destroy_qp(napi_env env, napi_callback_info info) {
  ID_METHOD(destroyQp, 0);
  if (io->qp) qp_destroy(io->qp);
  return undefined(env);
}

static napi_value id_destroy_js(napi_env env, napi_callback_info info) {
  ID_METHOD(destroy, 0);
  id_destroy(io);
  return undefined(env);
}

static napi_value id_local_address(napi_env env, napi_callback_info info) {
  ID_METHOD(localAddress, 0);
  return address_object(env, rdma_get_local_addr(io->id));
}

static napi_value id_remote_address(napi_env env, napi_callback_info info) {
  ID_METHOD(remoteAddress, 0);
  return address_object(env, rdma_get_peer_addr(io->id));
}

static napi_value id_device(napi_env env, napi_callback_info info) {
  ID_METHOD(device, 0);
  device_obj *dev = device_for(io->base.env, io->id->verbs);
  if (!dev) {
    napi_value null;
    napi_get_null(env, &null);
    return null;
  }
  return wrapper_of(env, &dev->base);
}

static napi_value id_port_num(napi_env env, napi_callback_info info) {
  ID_METHOD(portNum, 0);
  return num(env, io->id->port_num);
}

/* Moves the id's events to another channel of this environment. */
static napi_value id_migrate(napi_env env, napi_callback_info info) {
  ID_METHOD(migrate, 1);
  channel_obj *to = (channel_obj *)unwrap_arg(env, argv[0], K_CHANNEL, "channel");
  if (!to) return NULL;
  if (to == io->chan) return undefined(env);
  global_lock();
  int rc = rdma_migrate_id(io->id, to->ch);
  int err = errno;
  if (rc == 0) {
    io->chan->ids--;
    to->ids++;
    io->chan = to;
  }
  global_unlock();
  if (rc != 0) return throw_errno(env, err, "rdma_migrate_id");
  return undefined(env);
}

/* Hands the id to another thread: its events move to the channel with that token (a
 * channel of the receiving thread), and the id leaves this thread; the receiver calls
 * adoptCmId(token). Refused while the id has a queue pair (create it after adoption). */
static napi_value id_transfer(napi_env env, napi_callback_info info) {
  ID_METHOD(transfer, 1);
  uint32_t channel_token;
  if (!get_u32(env, argv[0], &channel_token)) return throw_type(env, "transfer(channelToken): a channel's token");
  if (io->qp) return throw_error(env, "CmId.transfer: destroy the queue pair first (create it on the receiving thread)");
  global_lock();
  channel_obj *to = all_channels;
  while (to && to->token != channel_token) to = to->next_global;
  if (!to || !to->base.alive) {
    global_unlock();
    return throw_error(env, "CmId.transfer: no live channel has that token");
  }
  if (to != io->chan) {
    if (rdma_migrate_id(io->id, to->ch) != 0) {
      int err = errno;
      global_unlock();
      return throw_errno(env, err, "rdma_migrate_id");
    }
    io->chan->ids--;
    to->ids++;
    io->chan = to;
  }
  io->token = next_token();
  io->next_transit = in_transit;
  in_transit = io;
  uint32_t token = io->token;
  obj_unlink(&io->base);
  io->base.env = NULL;
  global_unlock();
  /* this thread's wrapper lets go of the id: it is no longer a CmId here */
  napi_value wrapper = NULL;
  if (io->base.self) napi_get_reference_value(env, io->base.self, &wrapper);
  if (io->base.self) napi_delete_reference(env, io->base.self);
  io->base.self = NULL;
  if (wrapper && napi_remove_wrap(env, wrapper, NULL) == napi_ok) obj_release(&io->base);
  return num(env, token);
}

napi_value cm_adopt(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t token;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !get_u32(env, argv[0], &token) || token == 0) return throw_type(env, "adoptCmId(token): a token from CmId.transfer()");
  env_state *es = env_of(env);
  global_lock();
  id_obj **p = &in_transit;
  while (*p && (*p)->token != token) p = &(*p)->next_transit;
  id_obj *io = *p;
  if (!io) {
    global_unlock();
    return throw_error(env, "adoptCmId: no CM id is in transit with that token");
  }
  if (io->chan->base.env != es || (io->base.env && io->base.env != es)) {
    global_unlock();
    return throw_error(env, "adoptCmId: the id was handed to a channel of another thread");
  }
  *p = io->next_transit;
  io->token = 0;
  if (!io->base.env) obj_link(es, &io->base);
  global_unlock();
  /* an event may have adopted it already (its wrapper is then strong) */
  napi_value value = NULL;
  if (io->base.self) napi_get_reference_value(env, io->base.self, &value);
  return value ? value : wrap_new(es, &io->base, true);
}

void cm_define(napi_env env, env_state *es, napi_value exports) {
  napi_property_descriptor channel_props[] = {
      {"fd", NULL, NULL, channel_fd, NULL, NULL, napi_enumerable, NULL},
      {"token", NULL, NULL, channel_token, NULL, NULL, napi_enumerable, NULL},
      {"start", NULL, channel_start, NULL, NULL, NULL, napi_default, NULL},
      {"stop", NULL, channel_stop, NULL, NULL, NULL, napi_default, NULL},
      {"ref", NULL, channel_ref, NULL, NULL, NULL, napi_default, NULL},
      {"unref", NULL, channel_unref, NULL, NULL, NULL, napi_default, NULL},
      {"createId", NULL, channel_create_id, NULL, NULL, NULL, napi_default, NULL},
      {"destroy", NULL, channel_destroy_js, NULL, NULL, NULL, napi_default, NULL},
  };
  set_val(env, exports, "CmEventChannel",
          define_class(env, es, K_CHANNEL, sizeof channel_props / sizeof channel_props[0], channel_props));
  napi_property_descriptor id_props[] = {
      {"bind", NULL, id_bind, NULL, NULL, NULL, napi_default, NULL},
      {"listen", NULL, id_listen, NULL, NULL, NULL, napi_default, NULL},
      {"resolveAddr", NULL, id_resolve_addr, NULL, NULL, NULL, napi_default, NULL},
      {"resolveRoute", NULL, id_resolve_route, NULL, NULL, NULL, napi_default, NULL},
      {"connect", NULL, id_connect, NULL, NULL, NULL, napi_default, NULL},
      {"accept", NULL, id_accept, NULL, NULL, NULL, napi_default, NULL},
      {"reject", NULL, id_reject, NULL, NULL, NULL, napi_default, NULL},
      {"disconnect", NULL, id_disconnect, NULL, NULL, NULL, napi_default, NULL},
      {"createQp", NULL, id_create_qp, NULL, NULL, NULL, napi_default, NULL},
      {"destroyQp", NULL, id_destroy_qp, NULL, NULL, NULL, napi_default, NULL},
      {"destroy", NULL, id_destroy_js, NULL, NULL, NULL, napi_default, NULL},
      {"localAddress", NULL, id_local_address, NULL, NULL, NULL, napi_default, NULL},
      {"remoteAddress", NULL, id_remote_address, NULL, NULL, NULL, napi_default, NULL},
      {"device", NULL, id_device, NULL, NULL, NULL, napi_default, NULL},
      {"portNum", NULL, NULL, id_port_num, NULL, NULL, napi_enumerable, NULL},
      {"migrate", NULL, id_migrate, NULL, NULL, NULL, napi_default, NULL},
      {"transfer", NULL, id_transfer, NULL, NULL, NULL, napi_default, NULL},
  };
  set_val(env, exports, "CmId", define_class(env, es, K_ID, sizeof id_props / sizeof id_props[0], id_props));
}
