// nvmf_rbd: a thin N-API binding over the C APIs of librados and librbd, for
// the rbd bdev module (src/modules/bdev/rbd/).
//
// Threads. librbd completes asynchronous I/O on its own threads. Each realm
// (reactor) makes one completion queue: a completion is appended to that
// queue under its lock and, when the queue was empty, one call of a
// thread-safe function wakes the realm's event loop; the JavaScript side then
// gets every (tag, status) pair of the batch in an Int32Array it owns. Calls
// that block (connect, open, close, resize, stat, shutdown) run on a pthread
// of their own, never on the reactor and never on libuv's pool (the aio bdev
// shares it), and settle a promise through a thread-safe function.
//
// Handles. Clusters and images live in process-wide tables under numeric ids,
// so every realm (worker_threads load this addon once each: it is context
// aware) reaches the same rados_t / rbd_image_t. An image is reference
// counted: its owner (the bdev record), each realm that acquired it, and each
// I/O in flight; rbd_close runs once the owner closed it and the count is 0.

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <node_api.h>
#include <rados/librados.h>
#include <rbd/librbd.h>

// ------------------------------------------------------------------ helpers

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error((env), NULL, "nvmf_rbd: " #call " failed");         \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static char *get_string(napi_env env, napi_value v) {  // NULL for null/undefined
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) return NULL;
  size_t len = 0;
  napi_get_value_string_utf8(env, v, NULL, 0, &len);
  char *s = malloc(len + 1);
  if (s == NULL) return NULL;
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

static int spawn_detached(void *(*fn)(void *), void *arg) {
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&th, &attr, fn, arg);
  pthread_attr_destroy(&attr);
  return -rc;
}

// ------------------------------------------------------------------ jobs: a promise settled from a pthread

typedef struct job job_t;
typedef napi_value (*job_result_fn)(napi_env env, job_t *job);

struct job {
  napi_deferred deferred;
  napi_threadsafe_function tsfn;
  int rc;           // 0 = resolve, negative errno = reject
  char msg[1024];   // the rejection's message
  double number;    // a numeric result
  job_result_fn result;  // builds the resolved value (NULL: number, or undefined when no_value)
  bool no_value;
  void *ctx;        // the operation's own state
  double fields[5]; // small results (openImage)
};

static void job_settle_js(napi_env env, napi_value js_cb, void *context, void *data) {
  job_t *job = data;
  if (env != NULL) {
    if (job->rc == 0) {
      napi_value v;
      if (job->result != NULL) v = job->result(env, job);
      else if (job->no_value) napi_get_undefined(env, &v);
      else napi_create_double(env, job->number, &v);
      napi_resolve_deferred(env, job->deferred, v);
    } else {
      napi_value msg, code, err;
      napi_create_string_utf8(env, job->msg, NAPI_AUTO_LENGTH, &msg);
      napi_create_int32(env, job->rc, &code);
      napi_create_error(env, NULL, msg, &err);
      napi_set_named_property(env, err, "errno", code);
      napi_reject_deferred(env, job->deferred, err);
    }
  }
  free(job);
}

// Make a job and its promise; the caller starts the work and calls job_finish once.
static job_t *job_new(napi_env env, napi_value *promise) {
  job_t *job = calloc(1, sizeof(*job));
  if (job == NULL) return NULL;
  napi_value name;
  napi_create_string_utf8(env, "nvmf_rbd.job", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &job->deferred, promise) != napi_ok ||
      napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, job_settle_js,
                                      &job->tsfn) != napi_ok) {
    free(job);
    return NULL;
  }
  return job;
}

static void job_finish(job_t *job) {
  napi_threadsafe_function tsfn = job->tsfn;
  napi_call_threadsafe_function(tsfn, job, napi_tsfn_blocking);
  napi_release_threadsafe_function(tsfn, napi_tsfn_release);
}

static void job_fail(job_t *job, int rc, const char *what) {
  job->rc = rc < 0 ? rc : -EIO;
  snprintf(job->msg, sizeof(job->msg), "%s: %s", what, strerror(-job->rc));
}

// ------------------------------------------------------------------ the tables

typedef struct cluster {
  uint32_t id;
  rados_t rados;
  atomic_int refs;     // owner + open images
  job_t *release_job;  // settled when rados_shutdown returned
} cluster_t;

typedef struct image {
  uint32_t id;
  cluster_t *cluster;
  rados_ioctx_t ioctx;
  rbd_image_t image;
  atomic_int refs;     // owner + acquiring realms + I/O in flight
  bool watching;
  uint64_t watch_handle;
  napi_threadsafe_function watch_tsfn;
  job_t *close_job;
} image_t;

#define MAX_HANDLES 4096
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static cluster_t *g_clusters[MAX_HANDLES];
static image_t *g_images[MAX_HANDLES];
static uint32_t g_next_id = 1;

// Put p in a free slot of table; returns its id (slot in the low 12 bits) or 0 when full.
static uint32_t table_add(void **table, void *p) {
  pthread_mutex_lock(&g_lock);
  uint32_t id = 0;
  for (uint32_t i = 0; i < MAX_HANDLES; i++) {
    uint32_t slot = (g_next_id + i) % MAX_HANDLES;
    if (slot == 0 || table[slot] != NULL) continue;
    id = ((g_next_id++ & 0xfffff) << 12) | slot;
    if (id == 0) id = slot;
    table[slot] = p;
    break;
  }
  pthread_mutex_unlock(&g_lock);
  return id;
}

static void *table_get(void **table, uint32_t id, bool remove) {
  uint32_t slot = id % MAX_HANDLES;
  pthread_mutex_lock(&g_lock);
  void *p = table[slot];
  if (p != NULL && *(uint32_t *)p != id) p = NULL;  // id is each entry's first field
  if (p != NULL && remove) table[slot] = NULL;
  pthread_mutex_unlock(&g_lock);
  return p;
}

// ------------------------------------------------------------------ clusters

static void cluster_unref(cluster_t *c) {  // on a pthread of ours only (rados_shutdown blocks)
  if (atomic_fetch_sub(&c->refs, 1) != 1) return;
  rados_shutdown(c->rados);
  job_t *job = c->release_job;
  free(c);
  if (job != NULL) job_finish(job);
}

typedef struct {
  char *user;
  char *conf_file;
  bool read_default;
  char **settings;  // key, value, key, value, ..., NULL
  size_t nsettings;
  bool pin;         // core_mask: librados' threads inherit this thread's CPU set
  cpu_set_t cpus;
} connect_args_t;

static void connect_args_free(connect_args_t *a) {
  free(a->user);
  free(a->conf_file);
  for (size_t i = 0; i < a->nsettings; i++) free(a->settings[i]);
  free(a->settings);
  free(a);
}

static void *connect_thread(void *arg) {
  job_t *job = arg;
  connect_args_t *a = job->ctx;
  rados_t rados = NULL;
  if (a->pin && sched_setaffinity(0, sizeof(a->cpus), &a->cpus) < 0) {
    job_fail(job, -errno, "cannot bind librados' threads to core_mask (sched_setaffinity)");
    goto out;
  }
  int rc = rados_create(&rados, a->user);
  if (rc < 0) {
    job_fail(job, rc, "rados_create");
    goto out;
  }
  if (a->conf_file != NULL || a->read_default) {
    rc = rados_conf_read_file(rados, a->conf_file);
    if (rc < 0 && a->conf_file != NULL) {
      char what[300];
      snprintf(what, sizeof(what), "cannot read the config file %s", a->conf_file);
      job_fail(job, rc, what);
      goto out;
    }
  }
  for (size_t i = 0; i + 1 < a->nsettings; i += 2) {
    rc = rados_conf_set(rados, a->settings[i], a->settings[i + 1]);
    if (rc < 0) {
      char what[300];
      snprintf(what, sizeof(what), "cannot set %s = %s", a->settings[i], a->settings[i + 1]);
      job_fail(job, rc, what);
      goto out;
    }
  }
  rc = rados_connect(rados);
  if (rc < 0) {
    job_fail(job, rc, "cannot connect to the cluster (rados_connect)");
    goto out;
  }
  cluster_t *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    job_fail(job, -ENOMEM, "connect");
    goto out;
  }
  c->rados = rados;
  atomic_init(&c->refs, 1);
  c->id = table_add((void **)g_clusters, c);
  if (c->id == 0) {
    free(c);
    job_fail(job, -EMFILE, "too many clusters");
    goto out;
  }
  rados = NULL;
  job->number = c->id;
out:
  if (rados != NULL) rados_shutdown(rados);
  connect_args_free(a);
  job_finish(job);
  return NULL;
}

// connect(user: string|null, confFile: string|null, readDefaultConf: boolean, settings: string[],
//         cpus: number[]|null) -> Promise<id>
static napi_value js_connect(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_type(env, "connect(user, confFile, readDefaultConf, settings, cpus)");
  connect_args_t *a = calloc(1, sizeof(*a));
  if (a == NULL) return throw_type(env, "out of memory");
  a->user = get_string(env, argv[0]);
  a->conf_file = get_string(env, argv[1]);
  napi_get_value_bool(env, argv[2], &a->read_default);
  uint32_t n = 0;
  napi_get_array_length(env, argv[3], &n);
  a->settings = calloc(n + 1, sizeof(char *));
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    napi_get_element(env, argv[3], i, &v);
    a->settings[a->nsettings++] = get_string(env, v);
    if (a->settings[i] == NULL) {
      connect_args_free(a);
      return throw_type(env, "settings must be strings");
    }
  }
  bool is_array = false;
  napi_is_array(env, argv[4], &is_array);
  if (is_array) {
    napi_get_array_length(env, argv[4], &n);
    CPU_ZERO(&a->cpus);
    for (uint32_t i = 0; i < n; i++) {
      napi_value v;
      uint32_t cpu = 0;
      napi_get_element(env, argv[4], i, &v);
      napi_get_value_uint32(env, v, &cpu);
      if (cpu < CPU_SETSIZE) CPU_SET(cpu, &a->cpus);
    }
    a->pin = n > 0;
  }
  napi_value promise;
  job_t *job = job_new(env, &promise);
  if (job == NULL) {
    connect_args_free(a);
    return throw_type(env, "cannot create a promise");
  }
  job->ctx = a;
  int rc = spawn_detached(connect_thread, job);
  if (rc < 0) {
    connect_args_free(a);
    job_fail(job, rc, "pthread_create");
    job_finish(job);
  }
  return promise;
}

static void *release_cluster_thread(void *arg) {
  cluster_unref(arg);
  return NULL;
}

// releaseCluster(id) -> Promise<void>: drop the owner's reference; shutdown once no image uses it
static napi_value js_release_cluster(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t id = 0;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_get_value_uint32(env, argv[0], &id);
  napi_value promise;
  job_t *job = job_new(env, &promise);
  if (job == NULL) return throw_type(env, "cannot create a promise");
  job->no_value = true;
  cluster_t *c = table_get((void **)g_clusters, id, true);
  if (c == NULL) {
    job_fail(job, -ENOENT, "no such cluster handle");
    job_finish(job);
    return promise;
  }
  c->release_job = job;
  if (spawn_detached(release_cluster_thread, c) < 0) release_cluster_thread(c);
  return promise;
}

// confGet(clusterId, key) -> string | null (librados answers from its memory)
static napi_value js_conf_get(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  uint32_t id = 0;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_get_value_uint32(env, argv[0], &id);
  char *key = get_string(env, argv[1]);
  cluster_t *c = table_get((void **)g_clusters, id, false);
  char buf[1024];
  int rc = (c == NULL || key == NULL) ? -ENOENT : rados_conf_get(c->rados, key, buf, sizeof(buf));
  free(key);
  if (rc < 0) napi_get_null(env, &out);
  else napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &out);
  return out;
}

// ------------------------------------------------------------------ images

static void *close_image_thread(void *arg) {
  image_t *img = arg;
  if (img->watching) rbd_update_unwatch(img->image, img->watch_handle);
  if (img->watch_tsfn != NULL) napi_release_threadsafe_function(img->watch_tsfn, napi_tsfn_release);
  int rc = rbd_close(img->image);
  rados_ioctx_destroy(img->ioctx);
  cluster_unref(img->cluster);
  job_t *job = img->close_job;
  free(img);
  if (job != NULL) {
    if (rc < 0) job_fail(job, rc, "rbd_close");
    job_finish(job);
  }
  return NULL;
}

static void image_unref(image_t *img) {
  if (atomic_fetch_sub(&img->refs, 1) != 1) return;
  // may run on a librbd thread, which must not call rbd_close
  if (spawn_detached(close_image_thread, img) < 0) {
    fprintf(stderr, "nvmf_rbd: cannot start a thread to close an image; it stays open\n");
  }
}

typedef struct {
  uint32_t cluster_id;
  char *pool;
  char *name;
  bool read_only;
} open_args_t;

static napi_value open_result(napi_env env, job_t *job) {
  napi_value o, v;
  static const char *names[] = {"id", "size", "order", "features", "cache"};
  napi_create_object(env, &o);
  for (int i = 0; i < 4; i++) {
    napi_create_double(env, job->fields[i], &v);
    napi_set_named_property(env, o, names[i], v);
  }
  napi_get_boolean(env, job->fields[4] != 0, &v);
  napi_set_named_property(env, o, names[4], v);
  return o;
}

static void *open_thread(void *arg) {
  job_t *job = arg;
  open_args_t *a = job->ctx;
  char what[600];
  cluster_t *c = table_get((void **)g_clusters, a->cluster_id, false);
  image_t *img = NULL;
  if (c == NULL) {
    job_fail(job, -ENOENT, "no such cluster handle");
    goto out;
  }
  atomic_fetch_add(&c->refs, 1);
  img = calloc(1, sizeof(*img));
  if (img == NULL) {
    cluster_unref(c);
    job_fail(job, -ENOMEM, "open");
    goto out;
  }
  img->cluster = c;
  int rc = rados_ioctx_create(c->rados, a->pool, &img->ioctx);
  if (rc < 0) {
    snprintf(what, sizeof(what), "cannot open pool %s", a->pool);
    job_fail(job, rc, what);
    goto fail_cluster;
  }
  rc = a->read_only ? rbd_open_read_only(img->ioctx, a->name, &img->image, NULL)
                    : rbd_open(img->ioctx, a->name, &img->image, NULL);
  if (rc < 0) {
    snprintf(what, sizeof(what), "cannot open image %s in pool %s", a->name, a->pool);
    job_fail(job, rc, what);
    goto fail_ioctx;
  }
  rbd_image_info_t st;
  rc = rbd_stat(img->image, &st, sizeof(st));
  uint64_t features = 0;
  if (rc == 0) rc = rbd_get_features(img->image, &features);
  if (rc < 0) {
    snprintf(what, sizeof(what), "cannot stat image %s/%s", a->pool, a->name);
    job_fail(job, rc, what);
    rbd_close(img->image);
    goto fail_ioctx;
  }
  char cache[16] = "";
  rados_conf_get(c->rados, "rbd_cache", cache, sizeof(cache));
  atomic_init(&img->refs, 1);
  img->id = table_add((void **)g_images, img);
  if (img->id == 0) {
    job_fail(job, -EMFILE, "too many images");
    rbd_close(img->image);
    goto fail_ioctx;
  }
  job->fields[0] = img->id;
  job->fields[1] = (double)st.size;
  job->fields[2] = st.order;
  job->fields[3] = (double)features;
  job->fields[4] = strcmp(cache, "true") == 0;
  job->result = open_result;
  goto out;
fail_ioctx:
  rados_ioctx_destroy(img->ioctx);
fail_cluster:
  cluster_unref(c);
  free(img);
out:
  free(a->pool);
  free(a->name);
  free(a);
  job_finish(job);
  return NULL;
}

// openImage(clusterId, pool, image, readOnly) -> Promise<{id, size, order, features, cache}>
static napi_value js_open_image(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return throw_type(env, "openImage(clusterId, pool, image, readOnly)");
  open_args_t *a = calloc(1, sizeof(*a));
  if (a == NULL) return throw_type(env, "out of memory");
  napi_get_value_uint32(env, argv[0], &a->cluster_id);
  a->pool = get_string(env, argv[1]);
  a->name = get_string(env, argv[2]);
  napi_get_value_bool(env, argv[3], &a->read_only);
  if (a->pool == NULL || a->name == NULL) {
    free(a->pool);
    free(a->name);
    free(a);
    return throw_type(env, "pool and image must be strings");
  }
  napi_value promise;
  job_t *job = job_new(env, &promise);
  if (job == NULL) return throw_type(env, "cannot create a promise");
  job->ctx = a;
  int rc = spawn_detached(open_thread, job);
  if (rc < 0) {
    free(a->pool);
    free(a->name);
    free(a);
    job_fail(job, rc, "pthread_create");
    job_finish(job);
  }
  return promise;
}

// closeImage(id) -> Promise<void>: settles once the last reference is gone and rbd_close returned
static napi_value js_close_image(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t id = 0;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_get_value_uint32(env, argv[0], &id);
  napi_value promise;
  job_t *job = job_new(env, &promise);
  if (job == NULL) return throw_type(env, "cannot create a promise");
  job->no_value = true;
  image_t *img = table_get((void **)g_images, id, true);
  if (img == NULL) {
    job_fail(job, -ENOENT, "no such image handle");
    job_finish(job);
    return promise;
  }
  img->close_job = job;
  image_unref(img);
  return promise;
}

static void release_image_ext(napi_env env, void *data, void *hint) {}

// acquireImage(id) -> External | null: this realm's reference, for aio()
static napi_value js_acquire_image(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  uint32_t id = 0;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_get_value_uint32(env, argv[0], &id);
  pthread_mutex_lock(&g_lock);
  image_t *img = g_images[id % MAX_HANDLES];
  if (img != NULL && img->id == id) atomic_fetch_add(&img->refs, 1);
  else img = NULL;
  pthread_mutex_unlock(&g_lock);
  if (img == NULL) {
    napi_get_null(env, &out);
    return out;
  }
  CHECK(env, napi_create_external(env, img, release_image_ext, NULL, &out));
  return out;
}

// releaseImage(external): the realm is done with it
static napi_value js_release_image(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *p = NULL;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(env, napi_get_value_external(env, argv[0], &p));
  image_unref(p);
  return NULL;
}

typedef struct {
  uint32_t id;
  uint64_t size;
  bool resize;
} size_args_t;

static void *size_thread(void *arg) {
  job_t *job = arg;
  size_args_t *a = job->ctx;
  pthread_mutex_lock(&g_lock);
  image_t *img = g_images[a->id % MAX_HANDLES];
  if (img != NULL && img->id == a->id) atomic_fetch_add(&img->refs, 1);
  else img = NULL;
  pthread_mutex_unlock(&g_lock);
  if (img == NULL) {
    job_fail(job, -ENOENT, "no such image handle");
  } else {
    int rc = a->resize ? rbd_resize(img->image, a->size) : rbd_get_size(img->image, &a->size);
    if (rc < 0) job_fail(job, rc, a->resize ? "rbd_resize" : "rbd_get_size");
    else job->number = (double)a->size;
    image_unref(img);
  }
  free(a);
  job_finish(job);
  return NULL;
}

static napi_value size_op(napi_env env, napi_callback_info info, bool resize) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  size_args_t *a = calloc(1, sizeof(*a));
  if (a == NULL) return throw_type(env, "out of memory");
  napi_get_value_uint32(env, argv[0], &a->id);
  a->resize = resize;
  if (resize) {
    double d = 0;
    napi_get_value_double(env, argv[1], &d);
    a->size = (uint64_t)d;
  }
  napi_value promise;
  job_t *job = job_new(env, &promise);
  if (job == NULL) return throw_type(env, "cannot create a promise");
  job->ctx = a;
  int rc = spawn_detached(size_thread, job);
  if (rc < 0) {
    free(a);
    job_fail(job, rc, "pthread_create");
    job_finish(job);
  }
  return promise;
}

// imageSize(id) -> Promise<bytes>; resizeImage(id, bytes) -> Promise<bytes>
static napi_value js_image_size(napi_env env, napi_callback_info info) { return size_op(env, info, false); }
static napi_value js_resize_image(napi_env env, napi_callback_info info) { return size_op(env, info, true); }

static void on_image_update(void *arg) {  // librbd thread: the header changed (a resize elsewhere)
  image_t *img = arg;
  napi_call_threadsafe_function(img->watch_tsfn, NULL, napi_tsfn_nonblocking);
}

static void watch_call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  if (env == NULL || js_cb == NULL) return;
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_call_function(env, undefined, js_cb, 0, NULL, NULL);
}

// watchImage(id, callback): callback() in this realm after the image's header changed
static napi_value js_watch_image(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t id = 0;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_get_value_uint32(env, argv[0], &id);
  image_t *img = table_get((void **)g_images, id, false);
  if (img == NULL || img->watch_tsfn != NULL) return throw_type(env, "no such image, or already watched");
  napi_value name;
  napi_create_string_utf8(env, "nvmf_rbd.watch", NAPI_AUTO_LENGTH, &name);
  CHECK(env, napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, watch_call_js,
                                             &img->watch_tsfn));
  napi_unref_threadsafe_function(env, img->watch_tsfn);  // an idle watch keeps nothing alive
  int rc = rbd_update_watch(img->image, &img->watch_handle, on_image_update, img);
  img->watching = rc == 0;
  napi_value out;
  napi_create_int32(env, rc, &out);
  return out;
}

// ------------------------------------------------------------------ completion queues and I/O

enum { OP_READ = 0, OP_WRITE = 1, OP_DISCARD = 2, OP_WRITE_ZEROES = 3, OP_FLUSH = 4 };
#define INLINE_IOV 8

typedef struct cq cq_t;

typedef struct req {
  struct req *next;
  cq_t *cq;
  image_t *img;
  int32_t tag;
  int32_t status;  // 0 or -errno
  int op;
  bool flush_after;  // FUA with librbd's cache on: flush, then complete
  uint64_t len;
  rbd_completion_t comp;
  int iovcnt;
  struct iovec *iov;
  struct iovec iov_inline[INLINE_IOV];
} req_t;

struct cq {
  pthread_mutex_t lock;
  req_t *done_head, *done_tail;  // completed, not yet handed to JavaScript
  bool signalled;                // a call of the thread-safe function is pending
  bool alive;                    // the thread-safe function may be called
  napi_threadsafe_function tsfn;
  int32_t *out;                  // the JavaScript Int32Array: (tag, status) pairs
  uint32_t out_pairs;
  napi_ref out_ref;
  req_t *free_list;              // JavaScript thread only
  uint32_t in_flight;            // JavaScript thread only: the loop stays alive while > 0
  atomic_int refs;               // 1 while the realm lives + 1 per request in flight
};

static void cq_unref(cq_t *q) {
  if (atomic_fetch_sub(&q->refs, 1) != 1) return;
  req_t *r = q->free_list;
  while (r != NULL) {
    req_t *n = r->next;
    free(r);
    r = n;
  }
  pthread_mutex_destroy(&q->lock);
  free(q);
}

static void req_free(req_t *r) {
  if (r->iov != r->iov_inline) free(r->iov);
  free(r);
}

static void on_aio_done(rbd_completion_t c, void *arg);

static void req_done(req_t *r) {  // librbd thread (or the submitter, on a refused submission)
  image_unref(r->img);
  r->img = NULL;
  cq_t *q = r->cq;
  pthread_mutex_lock(&q->lock);
  if (!q->alive) {  // the realm is gone: nobody to tell
    pthread_mutex_unlock(&q->lock);
    req_free(r);
    cq_unref(q);
    return;
  }
  r->next = NULL;
  if (q->done_tail != NULL) q->done_tail->next = r;
  else q->done_head = r;
  q->done_tail = r;
  if (!q->signalled) {
    q->signalled = true;
    // under the lock: the finalizer takes it before the function goes away
    napi_call_threadsafe_function(q->tsfn, NULL, napi_tsfn_nonblocking);
  }
  pthread_mutex_unlock(&q->lock);
}

static void on_aio_done(rbd_completion_t c, void *arg) {
  req_t *r = arg;
  ssize_t rv = rbd_aio_get_return_value(c);
  rbd_aio_release(c);
  if (rv >= 0 && r->flush_after) {
    r->flush_after = false;
    if (rbd_aio_create_completion(r, on_aio_done, &r->comp) == 0) {
      int rc = rbd_aio_flush(r->img->image, r->comp);
      if (rc == 0) return;
      rbd_aio_release(r->comp);
      rv = rc;
    } else {
      rv = -ENOMEM;
    }
  }
  if (rv < 0) r->status = (int32_t)rv;
  else if (r->op == OP_READ && (uint64_t)rv != r->len) r->status = -EIO;  // short read
  else r->status = 0;
  req_done(r);
}

static void cq_deliver(napi_env env, napi_value js_cb, void *context, void *data) {
  cq_t *q = context;
  if (env == NULL || js_cb == NULL) return;
  pthread_mutex_lock(&q->lock);
  req_t *r = q->done_head;
  q->done_head = q->done_tail = NULL;
  q->signalled = false;
  pthread_mutex_unlock(&q->lock);
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  while (r != NULL) {
    uint32_t n = 0;
    while (r != NULL && n < q->out_pairs) {
      req_t *next = r->next;
      q->out[2 * n] = r->tag;
      q->out[2 * n + 1] = r->status;
      n++;
      if (r->iov != r->iov_inline) {
        free(r->iov);
        r->iov = r->iov_inline;
      }
      r->next = q->free_list;
      q->free_list = r;
      atomic_fetch_sub(&q->refs, 1);  // never the last: the realm holds one
      if (--q->in_flight == 0) napi_unref_threadsafe_function(env, q->tsfn);
      r = next;
    }
    napi_value count;
    napi_create_uint32(env, n, &count);
    napi_call_function(env, undefined, js_cb, 1, &count, NULL);
  }
}

static void cq_finalize(napi_env env, void *data, void *hint) {  // the realm's environment ends
  cq_t *q = data;
  pthread_mutex_lock(&q->lock);
  q->alive = false;
  req_t *r = q->done_head;
  q->done_head = q->done_tail = NULL;
  pthread_mutex_unlock(&q->lock);
  while (r != NULL) {
    req_t *n = r->next;
    req_free(r);
    cq_unref(q);
    r = n;
  }
  if (q->out_ref != NULL) napi_delete_reference(env, q->out_ref);
  q->out_ref = NULL;
  cq_unref(q);
}

// createCompletionQueue(callback(count), results: Int32Array) -> External
static napi_value js_create_cq(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out, name;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (argc < 2 || napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_int32_array || length < 2)
    return throw_type(env, "createCompletionQueue(callback, Int32Array of (tag, status) pairs)");
  cq_t *q = calloc(1, sizeof(*q));
  if (q == NULL) return throw_type(env, "out of memory");
  pthread_mutex_init(&q->lock, NULL);
  q->out = data;
  q->out_pairs = (uint32_t)(length / 2);
  q->alive = true;
  atomic_init(&q->refs, 1);
  napi_create_reference(env, argv[1], 1, &q->out_ref);
  napi_create_string_utf8(env, "nvmf_rbd.completions", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, q, cq_finalize, q, cq_deliver, &q->tsfn) !=
      napi_ok) {
    napi_delete_reference(env, q->out_ref);
    pthread_mutex_destroy(&q->lock);
    free(q);
    return throw_type(env, "cannot create the completion queue");
  }
  // referenced only while I/O is in flight: an idle queue keeps no loop alive
  napi_unref_threadsafe_function(env, q->tsfn);
  CHECK(env, napi_create_external(env, q, NULL, NULL, &out));
  return out;
}

static int fill_iov(napi_env env, napi_value v, req_t *r, uint64_t len) {
  bool is_array = false;
  napi_is_array(env, v, &is_array);
  uint32_t n = 1;
  if (is_array) napi_get_array_length(env, v, &n);
  if (n == 0) return -EINVAL;
  r->iov = n <= INLINE_IOV ? r->iov_inline : malloc(n * sizeof(struct iovec));
  if (r->iov == NULL) {
    r->iov = r->iov_inline;
    return -ENOMEM;
  }
  uint64_t total = 0;
  r->iovcnt = 0;
  for (uint32_t i = 0; i < n && total < len; i++) {
    napi_value b = v;
    if (is_array) napi_get_element(env, v, i, &b);
    void *p;
    size_t blen;
    if (napi_get_buffer_info(env, b, &p, &blen) != napi_ok) return -EINVAL;
    if (blen > len - total) blen = len - total;  // the caller's buffers may be longer than the I/O
    r->iov[r->iovcnt].iov_base = p;
    r->iov[r->iovcnt].iov_len = blen;
    r->iovcnt++;
    total += blen;
  }
  return total == len ? 0 : -EINVAL;
}

// aio(cq, image, op, offsetBytes, lengthBytes, data, tag, fua) -> 0 or -errno (then no completion comes)
// data: a Buffer or an array of Buffers (read, write), else null. fua: a write flushed before it
// completes (needed only with librbd's cache on). No compare-and-write: librbd 16 does it only
// within one 512-byte sector.
static napi_value js_aio(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], out;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  cq_t *q;
  image_t *img;
  int32_t op, tag;
  double off_d, len_d;
  if (argc < 7 || napi_get_value_external(env, argv[0], (void **)&q) != napi_ok ||
      napi_get_value_external(env, argv[1], (void **)&img) != napi_ok ||
      napi_get_value_int32(env, argv[2], &op) != napi_ok || napi_get_value_double(env, argv[3], &off_d) != napi_ok ||
      napi_get_value_double(env, argv[4], &len_d) != napi_ok || napi_get_value_int32(env, argv[6], &tag) != napi_ok)
    return throw_type(env, "aio(cq, image, op, offset, length, data, tag, extra)");
  uint64_t off = (uint64_t)off_d, len = (uint64_t)len_d;
  req_t *r = q->free_list;
  if (r != NULL) q->free_list = r->next;
  else r = malloc(sizeof(*r));
  int rc = 0;
  if (r == NULL) {
    napi_create_int32(env, -ENOMEM, &out);
    return out;
  }
  r->next = NULL;
  r->cq = q;
  r->img = img;
  r->tag = tag;
  r->op = op;
  r->len = len;
  r->status = 0;
  r->flush_after = false;
  r->iov = r->iov_inline;
  r->iovcnt = 0;
  if (op == OP_READ || op == OP_WRITE) rc = fill_iov(env, argv[5], r, len);
  if (rc == 0 && op == OP_WRITE && argc >= 8) {
    bool fua = false;
    napi_get_value_bool(env, argv[7], &fua);
    r->flush_after = fua;
  }
  if (rc == 0) rc = rbd_aio_create_completion(r, on_aio_done, &r->comp);
  if (rc == 0) {
    atomic_fetch_add(&img->refs, 1);
    atomic_fetch_add(&q->refs, 1);
    switch (op) {
      case OP_READ:
        rc = r->iovcnt == 1 ? rbd_aio_read(img->image, off, len, r->iov[0].iov_base, r->comp)
                            : rbd_aio_readv(img->image, r->iov, r->iovcnt, off, r->comp);
        break;
      case OP_WRITE:
        rc = r->iovcnt == 1 ? rbd_aio_write(img->image, off, len, r->iov[0].iov_base, r->comp)
                            : rbd_aio_writev(img->image, r->iov, r->iovcnt, off, r->comp);
        break;
      case OP_DISCARD:
        rc = rbd_aio_discard(img->image, off, len, r->comp);
        break;
      case OP_WRITE_ZEROES:
        rc = rbd_aio_write_zeroes(img->image, off, len, r->comp, 0, 0);
        break;
      case OP_FLUSH:
        rc = rbd_aio_flush(img->image, r->comp);
        break;
      default:
        rc = -EINVAL;
    }
    if (rc < 0) {
      rbd_aio_release(r->comp);
      atomic_fetch_sub(&img->refs, 1);  // never the last: the caller holds one
      atomic_fetch_sub(&q->refs, 1);
    } else {
      rc = 0;
      if (q->in_flight++ == 0) napi_ref_threadsafe_function(env, q->tsfn);
    }
  }
  if (rc < 0) {
    if (r->iov != r->iov_inline) free(r->iov);
    r->iov = r->iov_inline;
    r->next = q->free_list;
    q->free_list = r;
  }
  napi_create_int32(env, rc, &out);
  return out;
}

// ------------------------------------------------------------------ module

static napi_value js_version(napi_env env, napi_callback_info info) {
  int a, b, c;
  char buf[64];
  rbd_version(&a, &b, &c);
  napi_value out, v;
  napi_create_object(env, &out);
  snprintf(buf, sizeof(buf), "%d.%d.%d", a, b, c);
  napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, out, "librbd", v);
  rados_version(&a, &b, &c);
  snprintf(buf, sizeof(buf), "%d.%d.%d", a, b, c);
  napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, out, "librados", v);
  return out;
}

NAPI_MODULE_INIT() {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"version", js_version},
      {"connect", js_connect},
      {"releaseCluster", js_release_cluster},
      {"confGet", js_conf_get},
      {"openImage", js_open_image},
      {"closeImage", js_close_image},
      {"acquireImage", js_acquire_image},
      {"releaseImage", js_release_image},
      {"imageSize", js_image_size},
      {"resizeImage", js_resize_image},
      {"watchImage", js_watch_image},
      {"createCompletionQueue", js_create_cq},
      {"aio", js_aio},
  };
  for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f) != napi_ok ||
        napi_set_named_property(env, exports, fns[i].name, f) != napi_ok)
      return NULL;
  }
  return exports;
}
