/* gRPC over HTTP/2, the parts that are plain bytes and text: the 5-byte length prefix of each
 * message (an incremental deframer that takes DATA payloads however they are split, and the
 * encoder of the prefix), the status codes, the grpc-status and grpc-message trailers
 * (percent-encoding as the gRPC HTTP/2 protocol specifies) and grpc-timeout. No libuv, no
 * nghttp2: the client (grpc_call.c) and the server (grpc_scall.c) use it, and the fuzzer drives
 * it. */
#ifndef REMORA_GRPC_FRAME_H
#define REMORA_GRPC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GRPC_FRAME_PREFIX       5 /* compressed flag (1 byte) and length (4 bytes, big endian) */
#define GRPC_DEFAULT_MAX_RECV   (4 * 1024 * 1024) /* gRPC's default receive limit */
#define GRPC_TIMEOUT_TEXT_MAX   10                /* 8 digits, a unit, a NUL */
#define GRPC_MAX_TIMEOUT_DIGITS 8

/* The status codes of gRPC (google.rpc.Code). */
typedef enum grpc_code {
    GRPC_OK = 0,
    GRPC_CANCELLED = 1,
    GRPC_UNKNOWN = 2,
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_NOT_FOUND = 5,
    GRPC_ALREADY_EXISTS = 6,
    GRPC_PERMISSION_DENIED = 7,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_FAILED_PRECONDITION = 9,
    GRPC_ABORTED = 10,
    GRPC_OUT_OF_RANGE = 11,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
    GRPC_DATA_LOSS = 15,
    GRPC_UNAUTHENTICATED = 16,
} grpc_code_t;

/* One custom metadata entry (a header or trailer of a call), as both ends pass them. */
typedef struct grpc_metadata {
    const char *key; /* lower case, not starting with ':' or "grpc-" */
    const char *value;
} grpc_metadata_t;

/* Whether k (borrowed) may be sent as a custom metadata key: lower-case token characters, not
 * reserved by HTTP/2 or gRPC (no "grpc-" prefix, not te, content-type or user-agent). */
bool grpc_metadata_key_ok(const char *k);

/* "OK", "CANCELLED", ... (static); "UNKNOWN" for a number no code has. */
const char *grpc_code_name(int code);

/* --- message framing ------------------------------------------------------------------------ */

/* Writes the prefix of an uncompressed message of len bytes into out[0..5) (the caller's). */
void grpc_frame_prefix(uint8_t out[GRPC_FRAME_PREFIX], uint32_t len);

typedef enum {
    GRPC_DEFRAME_PREFIX, /* reading the 5-byte prefix */
    GRPC_DEFRAME_BODY,   /* assembling a message split over several inputs */
    GRPC_DEFRAME_FAILED, /* an error was returned; every later call returns it again */
} grpc_deframe_state_t;

/* Turns a stream of bytes (the DATA payloads of one gRPC stream) back into messages. A message
 * that arrives whole within one input is handed out in place; only one split over inputs is
 * assembled in the deframer's own buffer. */
typedef struct grpc_deframer {
    grpc_deframe_state_t state;
    uint8_t prefix[GRPC_FRAME_PREFIX];
    size_t prefix_len; /* prefix bytes seen so far */
    uint8_t *buf;      /* owned: the message being assembled (or the last one handed out) */
    size_t buf_cap;
    size_t msg_len; /* length of the message being assembled */
    size_t have;    /* its bytes received so far */
    size_t max_message;
    int error; /* the error once FAILED */
} grpc_deframer_t;

/* Initialises d (the caller's memory) to refuse messages longer than max_message bytes (0: the
 * gRPC default of 4 MiB). Needs no allocation. */
void grpc_deframer_init(grpc_deframer_t *d, size_t max_message);
/* Frees what d (borrowed; its memory stays the caller's) holds. */
void grpc_deframer_free(grpc_deframer_t *d);

/* Takes bytes from *in (borrowed) and *len, advancing both, until one whole message is ready or
 * the input is used up. Returns
 *   1: *msg, *msg_len hold a message, borrowed: it points into the input (when it came whole) or
 *      into d; valid until the next call on d and for as long as the input is;
 *   0: every byte was taken, the message under way needs more;
 *   -EMSGSIZE: a prefix announced a message over max_message;
 *   -ENOTSUP: a message was compressed (flag 1), and we negotiate no compression;
 *   -EPROTO: the flag byte was neither 0 nor 1;
 *   -ENOMEM.
 * After an error d is FAILED and returns the same error, taking nothing more. */
int grpc_deframer_next(grpc_deframer_t *d, const uint8_t **in, size_t *len, const uint8_t **msg,
                       size_t *msg_len);

/* Whether d (borrowed) is between messages: the stream may end here cleanly. */
bool grpc_deframer_idle(const grpc_deframer_t *d);

/* Called by grpc_deframer_feed with one whole message (msg[0..len), borrowed for the call);
 * returns whether to go on (false: the call has ended, leave the rest). */
typedef bool (*grpc_deframe_msg_fn)(void *arg, const uint8_t *msg, size_t len);

/* Takes data[0..len) (borrowed) into d (borrowed) and hands each whole message to
 * on_message(arg, ...) until the input is used up or on_message says stop. Returns 0, or the
 * error of grpc_deframer_next (see there; d is FAILED then). */
int grpc_deframer_feed(grpc_deframer_t *d, const uint8_t *data, size_t len,
                       grpc_deframe_msg_fn on_message, void *arg);

/* How one end words the errors of grpc_deframer_next for the status its call ends with (static
 * strings: the two ends speak of a request and of a response). */
typedef struct grpc_deframe_texts {
    const char *too_large; /* followed by " <limit> bytes" */
    const char *compressed;
    const char *no_memory;
    const char *bad_flag;
} grpc_deframe_texts_t;

/* The status a call ends with for error (from grpc_deframer_next on d, borrowed):
 * RESOURCE_EXHAUSTED for a message over d's limit or no memory for one, INTERNAL for a
 * compressed message or a bad flag. Its message, from texts (borrowed), into msg[0..cap) (the
 * caller's). */
grpc_code_t grpc_deframe_status(int error, const grpc_deframer_t *d,
                                const grpc_deframe_texts_t *texts, char *msg, size_t cap);

/* --- status, message, timeout ------------------------------------------------------------- */

/* Parses a grpc-status value (v[0..len), borrowed): decimal digits only. A number that names no
 * code gives GRPC_UNKNOWN, as gRPC says a client should treat it. Returns 0 and sets *code, or
 * -EINVAL (empty, not a number, over 9 digits). */
int grpc_status_parse(const char *v, size_t len, int *code);

/* Percent-decodes a grpc-message value (in[0..len), borrowed) into out (the caller's; cap >=
 * len + 1 always suffices) and NUL-terminates it. As gRPC specifies, a '%' not followed by two
 * hex digits is kept as it is rather than failing the message. Returns the decoded length (at
 * most cap - 1: the rest is cut). */
size_t grpc_message_decode(const char *in, size_t len, char *out, size_t cap);

/* Percent-encodes in[0..len) (borrowed) as a grpc-message value: bytes outside 0x20..0x7E and
 * '%' become %XX. Writes at most cap - 1 bytes and a NUL into out (the caller's; 3 * len + 1
 * always suffices) and returns the length of the whole encoding (which may be more than was
 * written, as snprintf does). */
size_t grpc_message_encode(const char *in, size_t len, char *out, size_t cap);

/* Formats a deadline ms milliseconds away as a grpc-timeout value into out (the caller's):
 * the finest unit whose value fits gRPC's 8 digits ("250m", "100000S", "1666667M"), never
 * shorter than asked (rounded up); over 99999999 hours is that many hours. Returns the length. */
size_t grpc_timeout_format(uint64_t ms, char out[GRPC_TIMEOUT_TEXT_MAX]);

/* Parses a grpc-timeout value (v[0..len), borrowed: 1..8 digits and a unit H, M, S, m, u, n)
 * into milliseconds, rounded up. Returns 0 and sets *ms, or -EINVAL. */
int grpc_timeout_parse(const char *v, size_t len, uint64_t *ms);

/* The gRPC code for an HTTP response status other than 200, as gRPC's HTTP-to-gRPC mapping
 * has it: 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
 * 429/502/503/504 UNAVAILABLE, any other UNKNOWN. */
grpc_code_t grpc_code_from_http(int http_status);

/* The gRPC code for an HTTP/2 RST_STREAM error code received before the call's status:
 * REFUSED_STREAM UNAVAILABLE, CANCEL CANCELLED, ENHANCE_YOUR_CALM RESOURCE_EXHAUSTED,
 * INADEQUATE_SECURITY PERMISSION_DENIED, any other INTERNAL. */
grpc_code_t grpc_code_from_h2_error(uint32_t h2_error);

#endif
