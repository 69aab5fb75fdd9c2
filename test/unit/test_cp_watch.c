/* The mesh directory's watch on a real loop and a real directory: a burst of writes is one
 * rescan, a burst that never goes quiet is still answered, a poll rescans without events, and a
 * directory that does not exist is an error that names it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cp/cp_watch.h"

typedef struct rig {
    uv_loop_t loop;
    char dir[64];
    int calls;
    int writes_left; /* for the writer timer */
    uv_timer_t writer, stop;
    cp_watch_t *w;
} rig_t;

static void on_change(void *arg)
{
    ((rig_t *)arg)->calls++;
}

static void write_file(rig_t *r, int i)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/f%d.yaml", r->dir, i % 3);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "kind: Namespace\nmetadata: {name: n%d}\n", i);
    fclose(f);
}

static void on_stop(uv_timer_t *t)
{
    rig_t *r = t->data;
    uv_timer_stop(&r->writer);
    uv_stop(&r->loop);
}

static void on_writer(uv_timer_t *t)
{
    rig_t *r = t->data;
    if (r->writes_left-- > 0)
        write_file(r, r->writes_left);
}

static void rig_start(rig_t *r, const cp_watch_opts_t *o)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/remora-cpwatch-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    uv_loop_init(&r->loop);
    char err[256];
    assert_int_equal(cp_watch_start(&r->loop, r->dir, o, on_change, r, &r->w, err, sizeof(err)), 0);
    uv_timer_init(&r->loop, &r->writer);
    uv_timer_init(&r->loop, &r->stop);
    r->writer.data = r->stop.data = r;
}

static void rig_run(rig_t *r, uint64_t ms)
{
    uv_timer_start(&r->stop, on_stop, ms, 0);
    uv_run(&r->loop, UV_RUN_DEFAULT);
}

static void rig_end(rig_t *r)
{
    cp_watch_stop(r->w);
    uv_close((uv_handle_t *)&r->writer, NULL);
    uv_close((uv_handle_t *)&r->stop, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
    assert_int_equal(system(cmd), 0);
}

static void test_watch_burst_of_writes_is_one_rescan(void **state)
{
    (void)state;
    rig_t r;
    cp_watch_opts_t o = {.debounce_ms = 300, .max_delay_ms = 10000};
    rig_start(&r, &o);
    for (int i = 0; i < 10; i++)
        write_file(&r, i);
    rig_run(&r, 1500);
    assert_int_equal(r.calls, 1);
    assert_true(cp_watch_last_delay_ms(r.w) >= 300); /* the debounce, at least */
    assert_true(cp_watch_events(r.w) >= 1);
    assert_int_equal(cp_watch_rescans(r.w), 1);
    rig_end(&r);
}

static void test_watch_endless_burst_is_cut_at_max_delay(void **state)
{
    (void)state;
    rig_t r;
    /* A write every 20 ms for 1.2 s never leaves 500 ms of quiet; the cut at 200 ms answers it
     * anyway, more than once. */
    cp_watch_opts_t o = {.debounce_ms = 500, .max_delay_ms = 200};
    rig_start(&r, &o);
    r.writes_left = 60;
    uv_timer_start(&r.writer, on_writer, 0, 20);
    rig_run(&r, 2500);
    assert_true(r.calls >= 2);
    assert_true((uint64_t)r.calls < cp_watch_events(r.w));
    rig_end(&r);
}

static void test_watch_lone_change_goes_at_once_with_leading(void **state)
{
    (void)state;
    rig_t r;
    /* A trailing debounce of 2 s would hold a lone change that long; the leading edge does
     * not. */
    cp_watch_opts_t o = {.debounce_ms = 2000, .max_delay_ms = 10000, .leading_ms = 5};
    rig_start(&r, &o);
    write_file(&r, 1);
    rig_run(&r, 800);
    assert_int_equal(r.calls, 1);
    rig_end(&r);
}

static void test_watch_burst_after_leading_is_one_trailing_rescan(void **state)
{
    (void)state;
    rig_t r;
    /* Ten writes 30 ms apart: the first is answered at once, the nine after it within the
     * 300 ms debounce make one rescan at the end. */
    cp_watch_opts_t o = {.debounce_ms = 300, .max_delay_ms = 10000, .leading_ms = 5};
    rig_start(&r, &o);
    r.writes_left = 10;
    uv_timer_start(&r.writer, on_writer, 0, 30);
    rig_run(&r, 1500);
    assert_int_equal(r.calls, 2);
    rig_end(&r);
}

static void test_watch_nothing_happens_without_changes(void **state)
{
    (void)state;
    rig_t r;
    cp_watch_opts_t o = {.debounce_ms = 50, .max_delay_ms = 1000};
    rig_start(&r, &o);
    rig_run(&r, 300);
    assert_int_equal(r.calls, 0);
    rig_end(&r);
}

static void test_watch_poll_rescans_without_events(void **state)
{
    (void)state;
    rig_t r;
    cp_watch_opts_t o = {.debounce_ms = 50, .max_delay_ms = 1000, .poll_ms = 100};
    rig_start(&r, &o);
    rig_run(&r, 550);
    assert_true(r.calls >= 2);
    assert_int_equal(cp_watch_events(r.w), 0);
    rig_end(&r);
}

static void test_watch_missing_directory_is_named(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    cp_watch_t *w = NULL;
    char err[256] = "";
    cp_watch_opts_t o = {.debounce_ms = 50};
    assert_true(cp_watch_start(&loop, "/nonexistent/remora-mesh", &o, on_change, NULL, &w, err,
                               sizeof(err)) < 0);
    assert_null(w);
    assert_non_null(strstr(err, "/nonexistent/remora-mesh"));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_burst_of_writes_is_one_rescan),
        cmocka_unit_test(test_watch_endless_burst_is_cut_at_max_delay),
        cmocka_unit_test(test_watch_lone_change_goes_at_once_with_leading),
        cmocka_unit_test(test_watch_burst_after_leading_is_one_trailing_rescan),
        cmocka_unit_test(test_watch_nothing_happens_without_changes),
        cmocka_unit_test(test_watch_poll_rescans_without_events),
        cmocka_unit_test(test_watch_missing_directory_is_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
