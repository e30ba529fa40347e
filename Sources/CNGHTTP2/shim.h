// libnghttp2 (1.52 on Debian bookworm: no `*2` APIs). The HTTP2 target is
// its only user.
#ifndef POSTERN_CNGHTTP2_H
#define POSTERN_CNGHTTP2_H
#include <nghttp2/nghttp2.h>
#endif
