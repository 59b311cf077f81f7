{
  "targets": [
    {
      "target_name": "lodestone_packet",
      "sources": ["native/packet_socket.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-fvisibility=hidden"]
    }
  ]
}
