/* certs.h — `remoractl certs`: make a root CA, intermediate CAs and SPIFFE workload certificates
 * into directories laid out as Istio's are (certs/ca.h does the work). */
#ifndef REMORA_CLI_CERTS_H
#define REMORA_CLI_CERTS_H

#include <stdint.h>

/* Parses a duration such as "90s", "30m", "24h", "365d" or "1h30m" (s, m, h, d units; every
 * number needs one) from s (borrowed) into *seconds. Returns 0, or -EINVAL when s is not such a
 * duration, is zero, or is longer than 100 years. */
int certs_parse_duration(const char *s, int64_t *seconds);

/* The `remoractl certs` command; argv[0] is "certs" (argv borrowed). Returns the process exit
 * status: 0 ok, 1 when the certificates could not be made or written (one line on stderr),
 * 2 for a usage error. */
int certs_main(int argc, char *argv[]);

#endif
