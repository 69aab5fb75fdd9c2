/* Command-line flags shared by remoractl's commands: a table of flags and one lookup that
 * accepts both "--flag value" and "--flag=value". */
#ifndef REMORA_CLI_FLAGS_H
#define REMORA_CLI_FLAGS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cli_flag {
    const char *name; /* "--out" */
    int id;           /* the command's own enum */
    bool takes_value;
    unsigned scope; /* the command's own use (e.g. which subcommands accept it) */
} cli_flag_t;

/* Returns the flag of flags[0..n) (borrowed) that arg (borrowed) names, a pointer into flags,
 * or NULL. *inline_value gets the text after
 * '=' (pointing into arg) or NULL when the value, if any, is the next argument. */
const cli_flag_t *cli_flag_find(const cli_flag_t *flags, size_t n, const char *arg,
                                const char **inline_value);

#endif
