/* Flag lookup shared by remoractl's commands. */
#include "cli/flags.h"

#include <string.h>

const cli_flag_t *cli_flag_find(const cli_flag_t *flags, size_t n, const char *arg,
                                const char **inline_value)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(flags[i].name);
        if (strncmp(arg, flags[i].name, len) != 0)
            continue;
        if (arg[len] == '\0') {
            *inline_value = NULL;
            return &flags[i];
        }
        if (arg[len] == '=') {
            *inline_value = arg + len + 1;
            return &flags[i];
        }
    }
    return NULL;
}
