{
  "targets": [
    {
      "target_name": "nvmf_rdma",
      "sources": ["src/addon.c", "src/cm.c", "src/verbs.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "libraries": ["-libverbs", "-lrdmacm"]
    }
  ]
}
