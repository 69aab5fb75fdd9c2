/* Runs a libFuzzer harness without libFuzzer: every corpus file, then deterministic mutations of
 * them (fixed seed), so plain gcc/ASan builds exercise the harness in `make test`. Generic over
 * harnesses: it only calls LLVMFuzzerTestOneInput. A crash aborts the process (non-zero exit);
 * under ASan the offending input is saved to fuzz-crash-<iteration> first. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Present only when linked with a sanitizer runtime. */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

#define REPLAY_MAX_INPUT (1 << 20)

typedef struct input {
    uint8_t *data;
    size_t len;
} input_t;

typedef struct corpus {
    input_t *files;
    size_t n, cap;
    char **tokens; /* identifier-like words seen in the corpus: field names, enum values */
    size_t ntokens, tokcap;
} corpus_t;

static const uint8_t *current;
static size_t current_len;
static unsigned long current_iter;

static void save_crash(void)
{
    char name[64];
    snprintf(name, sizeof(name), "fuzz-crash-%lu", current_iter);
    FILE *f = fopen(name, "wb");
    if (f) {
        fwrite(current, 1, current_len, f);
        fclose(f);
        fprintf(stderr, "replay: crashing input saved to %s\n", name);
    }
}

static int run(const uint8_t *data, size_t len, unsigned long iter)
{
    /* A private copy makes ASan catch reads past the end of the input. */
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, data, len);
    current = copy;
    current_len = len;
    current_iter = iter;
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
    return 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    uint64_t x = rng_state; /* xorshift64*: fixed seed, reproducible runs */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static size_t below(size_t n)
{
    return n ? (size_t)(rng() % n) : 0;
}

static int push_token(corpus_t *c, const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < c->ntokens; i++)
        if (strlen(c->tokens[i]) == len && memcmp(c->tokens[i], s, len) == 0)
            return 0;
    if (c->ntokens == c->tokcap) {
        size_t cap = c->tokcap ? c->tokcap * 2 : 64;
        char **t = realloc(c->tokens, cap * sizeof(*t));
        if (t == NULL)
            return -ENOMEM;
        c->tokens = t;
        c->tokcap = cap;
    }
    char *tok = strndup((const char *)s, len);
    if (tok == NULL)
        return -ENOMEM;
    c->tokens[c->ntokens++] = tok;
    return 0;
}

static int harvest_tokens(corpus_t *c, const input_t *in)
{
    size_t start = 0;
    for (size_t i = 0; i <= in->len; i++) {
        int word = i < in->len && (in->data[i] == '_' || in->data[i] == '@' ||
                                   (in->data[i] >= 'a' && in->data[i] <= 'z') ||
                                   (in->data[i] >= 'A' && in->data[i] <= 'Z') ||
                                   (in->data[i] >= '0' && in->data[i] <= '9'));
        if (!word) {
            if (i - start >= 2 && i - start <= 48 && c->ntokens < 4096 &&
                push_token(c, in->data + start, i - start) < 0)
                return -ENOMEM;
            start = i + 1;
        }
    }
    return 0;
}

static int add_file(corpus_t *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    uint8_t *data = malloc(REPLAY_MAX_INPUT);
    size_t len = data ? fread(data, 1, REPLAY_MAX_INPUT, f) : 0;
    fclose(f);
    if (data == NULL)
        return -ENOMEM;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 32;
        input_t *files = realloc(c->files, cap * sizeof(*files));
        if (files == NULL) {
            free(data);
            return -ENOMEM;
        }
        c->files = files;
        c->cap = cap;
    }
    c->files[c->n].data = data;
    c->files[c->n].len = len;
    c->n++;
    return harvest_tokens(c, &c->files[c->n - 1]);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Files of a directory in name order, so every run sees the same sequence. */
static int add_path(corpus_t *c, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    if (!S_ISDIR(st.st_mode))
        return add_file(c, path);
    DIR *d = opendir(path);
    if (d == NULL)
        return -errno;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **bigger = realloc(names, cap * sizeof(*names));
            if (bigger == NULL) {
                rc = -ENOMEM;
                break;
            }
            names = bigger;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (names[n] == NULL) {
            rc = -ENOMEM;
            break;
        }
        snprintf(names[n++], len, "%s/%s", path, e->d_name);
    }
    closedir(d);
    if (rc == 0)
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        struct stat fst;
        if (rc == 0 && stat(names[i], &fst) == 0 && S_ISREG(fst.st_mode))
            rc = add_file(c, names[i]);
        free(names[i]);
    }
    free(names);
    return rc;
}

static const char *const punctuation[] = {
    ":",
    " ",
    "\n",
    "\n  ",
    "\n- ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "&a ",
    "*a",
    "!!",
    "#",
    "---\n",
    "...\n",
    "? ",
    "|",
    ">",
    "~",
    "null",
    "true",
    "-1",
    "0",
    "4294967296",
    "99999999999999999999",
    "1.5s",
    "-0.5s",
    "\\",
    "\t",
    "%YAML 1.1\n",
    "\xff",
    "\xc3\xa9",
    "\0",
};

/* One mutation of buf (len bytes, capacity REPLAY_MAX_INPUT) in place; returns the new length. */
static size_t mutate(const corpus_t *c, uint8_t *buf, size_t len)
{
    const char *ins = NULL;
    size_t inslen = 0;
    switch (below(6)) {
    case 0: /* flip bits */
        if (len)
            buf[below(len)] ^= (uint8_t)(1u << below(8));
        return len;
    case 1: /* overwrite a byte */
        if (len)
            buf[below(len)] = (uint8_t)rng();
        return len;
    case 2: { /* cut a range */
        if (len == 0)
            return 0;
        size_t at = below(len), n = 1 + below(len - at < 32 ? len - at : 32);
        memmove(buf + at, buf + at + n, len - at - n);
        return len - n;
    }
    case 3: /* insert YAML punctuation */
        ins = punctuation[below(sizeof(punctuation) / sizeof(punctuation[0]))];
        inslen = ins[0] ? strlen(ins) : 1;
        break;
    case 4: /* insert a word from the corpus */
        if (c->ntokens == 0)
            return len;
        ins = c->tokens[below(c->ntokens)];
        inslen = strlen(ins);
        break;
    default: { /* splice in part of another corpus file */
        const input_t *o = &c->files[below(c->n)];
        if (o->len == 0)
            return len;
        size_t from = below(o->len);
        ins = (const char *)o->data + from;
        inslen = 1 + below(o->len - from);
        break;
    }
    }
    if (len + inslen > REPLAY_MAX_INPUT)
        return len;
    size_t at = below(len + 1);
    memmove(buf + at + inslen, buf + at, len - at);
    memcpy(buf + at, ins, inslen);
    return len + inslen;
}

static const char *harness_name(const char *argv0)
{
    static char name[128];
    const char *base = strrchr(argv0, '/');
    snprintf(name, sizeof(name), "%s", base ? base + 1 : argv0);
    char *suffix = strstr(name, "-replay");
    if (suffix)
        *suffix = '\0';
    return name;
}

int main(int argc, char **argv)
{
    unsigned long iterations = 20000;
    corpus_t c = {0};
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc)
            iterations = strtoul(argv[++i], NULL, 10);
        else if (strncmp(argv[i], "--iterations=", 13) == 0)
            iterations = strtoul(argv[i] + 13, NULL, 10);
        else
            rc = add_path(&c, argv[i]);
    }
    if (rc < 0 || c.n == 0) {
        fprintf(stderr, "usage: %s [--iterations N] CORPUS_DIR_OR_FILE...\n%s", argv[0],
                rc < 0 ? "" : "replay: no corpus files\n");
        return 2;
    }
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(save_crash);
    unsigned long inputs = 0;
    for (size_t i = 0; i < c.n; i++)
        run(c.files[i].data, c.files[i].len, inputs++);
    uint8_t *buf = malloc(REPLAY_MAX_INPUT);
    if (buf == NULL)
        return 2;
    for (unsigned long it = 0; it < iterations; it++) {
        const input_t *seed = &c.files[below(c.n)];
        size_t len = seed->len;
        memcpy(buf, seed->data, len);
        for (size_t k = 1 + below(4); k > 0; k--)
            len = mutate(&c, buf, len);
        run(buf, len, inputs++);
    }
    free(buf);
    printf("%s: %lu inputs, 0 crashes\n", harness_name(argv[0]), inputs);
    for (size_t i = 0; i < c.n; i++)
        free(c.files[i].data);
    for (size_t i = 0; i < c.ntokens; i++)
        free(c.tokens[i]);
    free(c.files);
    free(c.tokens);
    return 0;
}
