/* One protobuf message onto a control-plane stream (msgstream.h, which knows nothing of
 * protobuf): packed into a buffer of its size and sent as one frame. The sending end of the
 * sidecar's client (cp_client.c) and of tollgate-cp (cp_stream.c) alike. Loop thread only. */
#ifndef TOLLGATE_PBSTREAM_H
#define TOLLGATE_PBSTREAM_H

#include <protobuf-c/protobuf-c.h>

#include "tollgate/msgstream.h"

/* Packs m and sends it on s. On failure (out of memory, a send error) s is closed with the
 * reason, so a caller has nothing to undo. 0, TG_ENOMEM or the send's error. */
int tg_pbstream_send(struct tg_msgstream *s, const ProtobufCMessage *m);

#endif
