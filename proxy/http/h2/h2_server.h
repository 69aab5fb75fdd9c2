/* The connection manager's HTTP/2 downstream codec (h2_server.c, on nghttp2): many streams on
 * one connection, each a stream of the connection manager; chosen for a connection that opens
 * with HTTP/2's preface (h2c with prior knowledge) or whose TLS handshake agreed on "h2". */
#ifndef REMORA_H2_SERVER_H
#define REMORA_H2_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct hcm_codec;
struct hcm_conn;

/* The client connection preface, as it opens an HTTP/2 connection (RFC 9113 §3.4). */
#define H2_PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

/* The codec's table (static). */
extern const struct hcm_codec h2_server_codec;

/* Turns c (borrowed) into an HTTP/2 connection: its session is made (owned by c, freed with
 * it), our SETTINGS queued, and from now on c->codec is h2_server_codec. What c->in holds (the
 * preface and whatever followed it) is read at the next process. Returns 0 or -ENOMEM (c is
 * unchanged then). */
int h2_server_start(struct hcm_conn *c);

/* Closes the handles h2_server_start made for c (borrowed), each with cb (as the connection's
 * own handles are closed); returns how many. */
unsigned h2_server_close(struct hcm_conn *c, uv_close_cb cb);

/* Frees what h2_server_start made for c (borrowed), once its handles are closed. */
void h2_server_free(struct hcm_conn *c);

#endif
