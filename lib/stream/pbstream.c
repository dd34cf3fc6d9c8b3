/* Protobuf messages onto a msgstream (pbstream.h). */
#include "tollgate/pbstream.h"

#include <stdlib.h>

int tg_pbstream_send(struct tg_msgstream *s, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len > 0 ? len : 1);
    char err[TG_ERRLEN];
    int rc;

    if (buf == NULL) {
        tg_msgstream_close(s, false, "out of memory packing a message");
        return TG_ENOMEM;
    }
    protobuf_c_message_pack(m, buf);
    rc = tg_msgstream_send(s, buf, len, err);
    free(buf);
    if (rc < 0)
        tg_msgstream_close(s, false, "sending: %s", err);
    return rc;
}
