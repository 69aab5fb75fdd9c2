/* test_iptables.c — the capture rules `remoractl iptables` renders: defaults, each flag, rule
 * order, idempotent re-apply, clean, and flag errors. No iptables is run. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/iptables.h"

/* Parses argv (NULL-terminated, action first) or fails the test. */
static iptables_opts_t parse_ok(const char *first, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    char err[256];
    iptables_opts_t o;

    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    int rc = iptables_parse_args(argc, argv, &o, err, sizeof(err));
    if (rc != 0)
        fail_msg("parse failed: %s", err);
    return o;
}

/* Parses argv expecting -EINVAL; returns the message in a static buffer. */
static const char *parse_err(const char *first, ...)
{
    static char err[256];
    char *argv[32];
    int argc = 0;
    va_list ap;
    iptables_opts_t o;

    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    assert_int_equal(iptables_parse_args(argc, argv, &o, err, sizeof(err)), -EINVAL);
    assert_true(err[0] != '\0');
    return err;
}

static char *render(const iptables_opts_t *o, const char *saved)
{
    char *text = NULL;
    assert_int_equal(iptables_render_apply(o, saved, &text), 0);
    assert_non_null(text);
    return text;
}

static char *render_defaults(void)
{
    iptables_opts_t o = parse_ok("apply", NULL);
    return render(&o, NULL);
}

/* Byte offset of the whole line `line` in text, or fails the test if absent. */
static ptrdiff_t line_at(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return p - text;
    }
    fail_msg("missing line \"%s\" in:\n%s", line, text);
    return -1;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

static int count_substr(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ---- defaults ------------------------------------------------------------------------------- */

static void test_iptables_defaults_redirect_to_15001_and_15006(void **state)
{
    (void)state;
    char *t = render_defaults();
    line_at(t, "-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports 15001");
    line_at(t, "-A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006");
    free(t);
}

static void test_iptables_defaults_install_both_jumps_once(void **state)
{
    (void)state;
    char *t = render_defaults();
    line_at(t, "-A PREROUTING -p tcp -j REMORA_INBOUND");
    line_at(t, "-A OUTPUT -p tcp -j REMORA_OUTPUT");
    assert_int_equal(count_substr(t, "-j REMORA_INBOUND"), 1);
    assert_int_equal(count_substr(t, "-j REMORA_OUTPUT"), 1);
    free(t);
}

static void test_iptables_defaults_capture_all_inbound_except_admin_ports(void **state)
{
    (void)state;
    char *t = render_defaults();
    ptrdiff_t capture = line_at(t, "-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT");
    assert_true(line_at(t, "-A REMORA_INBOUND -p tcp --dport 15000 -j RETURN") < capture);
    assert_true(line_at(t, "-A REMORA_INBOUND -p tcp --dport 15021 -j RETURN") < capture);
    assert_true(line_at(t, "-A REMORA_INBOUND -p tcp --dport 15090 -j RETURN") < capture);
    free(t);
}

static void test_iptables_apply_is_one_nat_transaction(void **state)
{
    (void)state;
    char *t = render_defaults();
    ptrdiff_t start = line_at(t, "*nat");
    assert_true(line_at(t, "COMMIT") > start);
    assert_int_equal(count_substr(t, "COMMIT"), 1);
    assert_int_equal(count_substr(t, "\n*"), 1);
    free(t);
}

static void test_iptables_apply_declares_chains_so_reapply_flushes(void **state)
{
    (void)state;
    char *t = render_defaults();
    ptrdiff_t first_rule = line_at(t, "-A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006");
    assert_true(line_at(t, ":REMORA_INBOUND - [0:0]") < first_rule);
    assert_true(line_at(t, ":REMORA_IN_REDIRECT - [0:0]") < first_rule);
    assert_true(line_at(t, ":REMORA_OUTPUT - [0:0]") < first_rule);
    assert_true(line_at(t, ":REMORA_REDIRECT - [0:0]") < first_rule);
    /* Never declare a built-in chain: with --noflush that would reset its policy. */
    assert_null(strstr(t, ":OUTPUT"));
    assert_null(strstr(t, ":PREROUTING"));
    free(t);
}

/* ---- outbound ordering ---------------------------------------------------------------------- */

static void test_iptables_excludes_proxy_uid_before_redirect(void **state)
{
    (void)state;
    char *t = render_defaults();
    ptrdiff_t redirect = line_at(t, "-A REMORA_OUTPUT -j REMORA_REDIRECT");
    assert_true(line_at(t, "-A REMORA_OUTPUT -m owner --uid-owner 1337 -j RETURN") < redirect);
    free(t);
}

static void test_iptables_excludes_proxy_gid_before_redirect(void **state)
{
    (void)state;
    char *t = render_defaults();
    ptrdiff_t redirect = line_at(t, "-A REMORA_OUTPUT -j REMORA_REDIRECT");
    assert_true(line_at(t, "-A REMORA_OUTPUT -m owner --gid-owner 1337 -j RETURN") < redirect);
    free(t);
}

static void test_iptables_redirect_is_last_outbound_rule(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("apply", "--exclude-outbound-cidrs", "198.19.0.0/16", NULL);
    char *t = render(&o, NULL);
    ptrdiff_t redirect = line_at(t, "-A REMORA_OUTPUT -j REMORA_REDIRECT");
    const char *after = t + redirect + 1;
    assert_null(strstr(after, "-A REMORA_OUTPUT"));
    free(t);
}

static void test_iptables_passthrough_source_returns_before_owner_rules(void **state)
{
    (void)state;
    char *t = render_defaults();
    ptrdiff_t pass = line_at(t, "-A REMORA_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN");
    assert_true(pass < line_at(t, "-A REMORA_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner "
                                  "--uid-owner 1337 -j REMORA_IN_REDIRECT"));
    free(t);
}

static void test_iptables_proxy_to_own_pod_ip_goes_inbound_before_uid_return(void **state)
{
    (void)state;
    char *t = render_defaults();
    ptrdiff_t in = line_at(t, "-A REMORA_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --uid-owner 1337 "
                              "-j REMORA_IN_REDIRECT");
    ptrdiff_t app_lo = line_at(t, "-A REMORA_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN");
    ptrdiff_t ret = line_at(t, "-A REMORA_OUTPUT -m owner --uid-owner 1337 -j RETURN");
    assert_true(in < app_lo);
    assert_true(app_lo < ret);
    free(t);
}

static void test_iptables_localhost_returns_before_redirect(void **state)
{
    (void)state;
    char *t = render_defaults();
    assert_true(line_at(t, "-A REMORA_OUTPUT -d 127.0.0.1/32 -j RETURN") <
                line_at(t, "-A REMORA_OUTPUT -j REMORA_REDIRECT"));
    free(t);
}

static void test_iptables_outbound_jump_matches_tcp_only(void **state)
{
    (void)state;
    char *t = render_defaults();
    assert_false(has_line(t, "-A OUTPUT -j REMORA_OUTPUT"));
    line_at(t, "-A OUTPUT -p tcp -j REMORA_OUTPUT");
    free(t);
}

/* ---- flags ---------------------------------------------------------------------------------- */

static void test_iptables_proxy_uid_flag_changes_owner_rules(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("apply", "--proxy-uid", "2000", NULL);
    char *t = render(&o, NULL);
    line_at(t, "-A REMORA_OUTPUT -m owner --uid-owner 2000 -j RETURN");
    assert_null(strstr(t, "--uid-owner 1337"));
    free(t);
}

static void test_iptables_proxy_gid_follows_uid_by_default(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("apply", "--proxy-uid=2000", NULL);
    assert_int_equal(o.proxy_gid, 2000);
}

static void test_iptables_proxy_gid_flag_overrides_uid(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("apply", "--proxy-gid", "3000", "--proxy-uid", "2000", NULL);
    char *t = render(&o, NULL);
    line_at(t, "-A REMORA_OUTPUT -m owner --gid-owner 3000 -j RETURN");
    line_at(t, "-A REMORA_OUTPUT -m owner --uid-owner 2000 -j RETURN");
    free(t);
}

static void test_iptables_capture_ports_flags_change_redirect_targets(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("apply", "--outbound-port", "16001", "--inbound-port=16006", NULL);
    char *t = render(&o, NULL);
    line_at(t, "-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports 16001");
    line_at(t, "-A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006");
    free(t);
}

static void test_iptables_inbound_port_list_captures_only_listed(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("apply", "--inbound-ports", "8080,9090", NULL);
    char *t = render(&o, NULL);
    line_at(t, "-A REMORA_INBOUND -p tcp --dport 8080 -j REMORA_IN_REDIRECT");
    line_at(t, "-A REMORA_INBOUND -p tcp --dport 9090 -j REMORA_IN_REDIRECT");
    assert_false(has_line(t, "-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT"));
    free(t);
}

static void test_iptables_excluded_inbound_port_returns_even_when_listed(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("apply", "--inbound-ports", "15021,8080", NULL);
    char *t = render(&o, NULL);
    assert_true(line_at(t, "-A REMORA_INBOUND -p tcp --dport 15021 -j RETURN") <
                line_at(t, "-A REMORA_INBOUND -p tcp --dport 15021 -j REMORA_IN_REDIRECT"));
    free(t);
}

static void test_iptables_exclude_inbound_ports_replaces_default(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("apply", "--exclude-inbound-ports", "22", NULL);
    char *t = render(&o, NULL);
    line_at(t, "-A REMORA_INBOUND -p tcp --dport 22 -j RETURN");
    assert_null(strstr(t, "--dport 15021"));
    free(t);
}

static void test_iptables_empty_inbound_ports_adds_no_prerouting_jump(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("apply", "--inbound-ports", "", NULL);
    char *t = render(&o, NULL);
    assert_null(strstr(t, "-A PREROUTING"));
    line_at(t, "-A OUTPUT -p tcp -j REMORA_OUTPUT");
    free(t);
}

static void test_iptables_exclude_outbound_ports_return_first(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("apply", "--exclude-outbound-ports", "22,5432", NULL);
    char *t = render(&o, NULL);
    ptrdiff_t p22 = line_at(t, "-A REMORA_OUTPUT -p tcp --dport 22 -j RETURN");
    ptrdiff_t p5432 = line_at(t, "-A REMORA_OUTPUT -p tcp --dport 5432 -j RETURN");
    ptrdiff_t pass = line_at(t, "-A REMORA_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN");
    assert_true(p22 < pass && p5432 < pass);
    free(t);
}

static void test_iptables_exclude_outbound_cidrs_return_before_redirect(void **state)
{
    (void)state;
    iptables_opts_t o =
        parse_ok("apply", "--exclude-outbound-cidrs", "198.18.7.9/16,198.19.0.10", NULL);
    char *t = render(&o, NULL);
    ptrdiff_t redirect = line_at(t, "-A REMORA_OUTPUT -j REMORA_REDIRECT");
    /* host bits are cleared and a bare address means /32 */
    assert_true(line_at(t, "-A REMORA_OUTPUT -d 198.18.0.0/16 -j RETURN") < redirect);
    assert_true(line_at(t, "-A REMORA_OUTPUT -d 198.19.0.10/32 -j RETURN") < redirect);
    free(t);
}

static void test_iptables_zero_prefix_cidr_is_everything(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("apply", "--exclude-outbound-cidrs", "1.2.3.4/0", NULL);
    char *t = render(&o, NULL);
    line_at(t, "-A REMORA_OUTPUT -d 0.0.0.0/0 -j RETURN");
    free(t);
}

static void test_iptables_dry_run_and_clean_parse(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("clean", "--dry-run", NULL);
    assert_int_equal(o.action, IPT_ACTION_CLEAN);
    assert_true(o.dry_run);
}

static void test_iptables_help_needs_no_action(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("--help", NULL);
    assert_true(o.help);
}

/* ---- idempotence against the current ruleset ----------------------------------------------- */

static const char SAVED_INSTALLED[] = "# Generated by iptables-save v1.8.9 (nf_tables)\n"
                                      "*nat\n"
                                      ":PREROUTING ACCEPT [0:0]\n"
                                      ":INPUT ACCEPT [0:0]\n"
                                      ":OUTPUT ACCEPT [0:0]\n"
                                      ":POSTROUTING ACCEPT [0:0]\n"
                                      ":REMORA_INBOUND - [0:0]\n"
                                      ":REMORA_IN_REDIRECT - [0:0]\n"
                                      ":REMORA_OUTPUT - [0:0]\n"
                                      ":REMORA_REDIRECT - [0:0]\n"
                                      "-A PREROUTING -p tcp -j REMORA_INBOUND\n"
                                      "-A OUTPUT -p tcp -j REMORA_OUTPUT\n"
                                      "-A OUTPUT -d 198.18.0.9/32 -j ACCEPT\n"
                                      "-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT\n"
                                      "-A REMORA_OUTPUT -j REMORA_REDIRECT\n"
                                      "COMMIT\n";

static void test_iptables_apply_keeps_existing_jumps(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("apply", NULL);
    char *t = render(&o, SAVED_INSTALLED);
    assert_null(strstr(t, "-A PREROUTING"));
    assert_null(strstr(t, "-A OUTPUT"));
    assert_null(strstr(t, "-D "));
    free(t);
}

static void test_iptables_apply_deletes_duplicate_and_stale_jumps(void **state)
{
    (void)state;
    const char *saved = "*nat\n"
                        ":REMORA_OUTPUT - [0:0]\n"
                        "-A OUTPUT -p tcp -j REMORA_OUTPUT\n"
                        "-A OUTPUT -p tcp -j REMORA_OUTPUT\n"
                        "-A OUTPUT -j REMORA_OUTPUT\n"
                        "-A POSTROUTING -p tcp -j REMORA_REDIRECT\n"
                        "COMMIT\n";
    iptables_opts_t o = parse_ok("apply", NULL);
    char *t = render(&o, saved);
    assert_int_equal(count_substr(t, "-D OUTPUT -p tcp -j REMORA_OUTPUT\n"), 1);
    line_at(t, "-D OUTPUT -j REMORA_OUTPUT");
    line_at(t, "-D POSTROUTING -p tcp -j REMORA_REDIRECT");
    assert_null(strstr(t, "-A OUTPUT")); /* one copy was kept */
    line_at(t, "-A PREROUTING -p tcp -j REMORA_INBOUND");
    free(t);
}

static void test_iptables_apply_drops_inbound_jump_when_inbound_disabled(void **state)
{
    (void)state;
    iptables_opts_t o = parse_ok("apply", "--inbound-ports=", NULL);
    char *t = render(&o, SAVED_INSTALLED);
    line_at(t, "-D PREROUTING -p tcp -j REMORA_INBOUND");
    free(t);
}

static void test_iptables_apply_ignores_jumps_in_other_tables(void **state)
{
    (void)state;
    const char *saved = "*mangle\n"
                        "-A OUTPUT -j REMORA_MARK\n"
                        "COMMIT\n"
                        "*nat\n"
                        "COMMIT\n";
    iptables_opts_t o = parse_ok("apply", NULL);
    char *t = render(&o, saved);
    assert_null(strstr(t, "REMORA_MARK"));
    free(t);
}

/* ---- clean ---------------------------------------------------------------------------------- */

static void test_iptables_clean_deletes_jumps_then_flushes_then_deletes_chains(void **state)
{
    (void)state;
    char *t = NULL;
    assert_int_equal(iptables_render_clean(SAVED_INSTALLED, &t), 0);
    assert_non_null(t);
    ptrdiff_t d1 = line_at(t, "-D PREROUTING -p tcp -j REMORA_INBOUND");
    ptrdiff_t d2 = line_at(t, "-D OUTPUT -p tcp -j REMORA_OUTPUT");
    ptrdiff_t first_flush = line_at(t, "-F REMORA_INBOUND");
    ptrdiff_t last_flush = line_at(t, "-F REMORA_REDIRECT");
    ptrdiff_t first_delete = line_at(t, "-X REMORA_INBOUND");
    line_at(t, "-X REMORA_IN_REDIRECT");
    line_at(t, "-X REMORA_OUTPUT");
    line_at(t, "-X REMORA_REDIRECT");
    assert_true(d1 < first_flush && d2 < first_flush);
    assert_true(last_flush < first_delete);
    assert_true(line_at(t, "*nat") < d1);
    line_at(t, "COMMIT");
    free(t);
}

static void test_iptables_clean_leaves_foreign_rules(void **state)
{
    (void)state;
    char *t = NULL;
    assert_int_equal(iptables_render_clean(SAVED_INSTALLED, &t), 0);
    assert_null(strstr(t, "198.18.0.9"));
    assert_null(strstr(t, "PREROUTING ACCEPT"));
    free(t);
}

static void test_iptables_clean_with_nothing_installed_renders_nothing(void **state)
{
    (void)state;
    const char *saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
    char *t = (char *)"sentinel";
    assert_int_equal(iptables_render_clean(saved, &t), 0);
    assert_null(t);
    assert_int_equal(iptables_render_clean(NULL, &t), 0);
    assert_null(t);
}

/* ---- flag errors ---------------------------------------------------------------------------- */

static void test_iptables_rejects_port_out_of_range(void **state)
{
    (void)state;
    assert_non_null(strstr(parse_err("apply", "--outbound-port", "70000", NULL), "70000"));
    parse_err("apply", "--inbound-port", "0", NULL);
    parse_err("apply", "--exclude-inbound-ports", "15021,65536", NULL);
}

static void test_iptables_rejects_non_numeric_port(void **state)
{
    (void)state;
    assert_non_null(strstr(parse_err("apply", "--outbound-port", "abc", NULL), "abc"));
    parse_err("apply", "--inbound-ports", "80,http", NULL);
    parse_err("apply", "--exclude-outbound-ports", "+80", NULL);
    parse_err("apply", "--exclude-outbound-ports", "80,", NULL);
}

static void test_iptables_rejects_star_outside_inbound_ports(void **state)
{
    (void)state;
    parse_err("apply", "--exclude-inbound-ports", "*", NULL);
}

static void test_iptables_rejects_bad_cidr(void **state)
{
    (void)state;
    assert_non_null(
        strstr(parse_err("apply", "--exclude-outbound-cidrs", "198.18.0/16", NULL), "198.18.0/16"));
    parse_err("apply", "--exclude-outbound-cidrs", "198.18.0.0/33", NULL);
    parse_err("apply", "--exclude-outbound-cidrs", "198.18.0.0/", NULL);
    parse_err("apply", "--exclude-outbound-cidrs", "256.1.1.1/8", NULL);
}

static void test_iptables_rejects_ipv6_cidr_by_name(void **state)
{
    (void)state;
    assert_non_null(
        strstr(parse_err("apply", "--exclude-outbound-cidrs", "fd00::/8", NULL), "IPv6"));
}

static void test_iptables_rejects_missing_value(void **state)
{
    (void)state;
    assert_non_null(strstr(parse_err("apply", "--proxy-uid", NULL), "needs a value"));
    assert_non_null(
        strstr(parse_err("apply", "--outbound-port", "--dry-run", NULL), "needs a value"));
}

static void test_iptables_rejects_bad_uid(void **state)
{
    (void)state;
    parse_err("apply", "--proxy-uid", "-1", NULL);
    parse_err("apply", "--proxy-gid", "4294967295", NULL);
    parse_err("apply", "--proxy-uid", "root", NULL);
}

static void test_iptables_rejects_unknown_flag(void **state)
{
    (void)state;
    assert_non_null(strstr(parse_err("apply", "--inbound-portz", "1", NULL), "--inbound-portz"));
    parse_err("apply", "--dry-run=yes", NULL);
}

static void test_iptables_rejects_unknown_or_missing_action(void **state)
{
    (void)state;
    assert_non_null(strstr(parse_err("install", NULL), "install"));
    parse_err("--dry-run", NULL);
    parse_err("apply", "clean", NULL);
}

static void test_iptables_rejects_too_many_ports(void **state)
{
    (void)state;
    char list[IPT_MAX_PORTS * 6 + 16] = "";
    for (int i = 0; i <= IPT_MAX_PORTS; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%d", i ? "," : "", 1000 + i);
    parse_err("apply", "--exclude-outbound-ports", list, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iptables_defaults_redirect_to_15001_and_15006),
        cmocka_unit_test(test_iptables_defaults_install_both_jumps_once),
        cmocka_unit_test(test_iptables_defaults_capture_all_inbound_except_admin_ports),
        cmocka_unit_test(test_iptables_apply_is_one_nat_transaction),
        cmocka_unit_test(test_iptables_apply_declares_chains_so_reapply_flushes),
        cmocka_unit_test(test_iptables_excludes_proxy_uid_before_redirect),
        cmocka_unit_test(test_iptables_excludes_proxy_gid_before_redirect),
        cmocka_unit_test(test_iptables_redirect_is_last_outbound_rule),
        cmocka_unit_test(test_iptables_passthrough_source_returns_before_owner_rules),
        cmocka_unit_test(test_iptables_proxy_to_own_pod_ip_goes_inbound_before_uid_return),
        cmocka_unit_test(test_iptables_localhost_returns_before_redirect),
        cmocka_unit_test(test_iptables_outbound_jump_matches_tcp_only),
        cmocka_unit_test(test_iptables_proxy_uid_flag_changes_owner_rules),
        cmocka_unit_test(test_iptables_proxy_gid_follows_uid_by_default),
        cmocka_unit_test(test_iptables_proxy_gid_flag_overrides_uid),
        cmocka_unit_test(test_iptables_capture_ports_flags_change_redirect_targets),
        cmocka_unit_test(test_iptables_inbound_port_list_captures_only_listed),
        cmocka_unit_test(test_iptables_excluded_inbound_port_returns_even_when_listed),
        cmocka_unit_test(test_iptables_exclude_inbound_ports_replaces_default),
        cmocka_unit_test(test_iptables_empty_inbound_ports_adds_no_prerouting_jump),
        cmocka_unit_test(test_iptables_exclude_outbound_ports_return_first),
        cmocka_unit_test(test_iptables_exclude_outbound_cidrs_return_before_redirect),
        cmocka_unit_test(test_iptables_zero_prefix_cidr_is_everything),
        cmocka_unit_test(test_iptables_dry_run_and_clean_parse),
        cmocka_unit_test(test_iptables_help_needs_no_action),
        cmocka_unit_test(test_iptables_apply_keeps_existing_jumps),
        cmocka_unit_test(test_iptables_apply_deletes_duplicate_and_stale_jumps),
        cmocka_unit_test(test_iptables_apply_drops_inbound_jump_when_inbound_disabled),
        cmocka_unit_test(test_iptables_apply_ignores_jumps_in_other_tables),
        cmocka_unit_test(test_iptables_clean_deletes_jumps_then_flushes_then_deletes_chains),
        cmocka_unit_test(test_iptables_clean_leaves_foreign_rules),
        cmocka_unit_test(test_iptables_clean_with_nothing_installed_renders_nothing),
        cmocka_unit_test(test_iptables_rejects_port_out_of_range),
        cmocka_unit_test(test_iptables_rejects_non_numeric_port),
        cmocka_unit_test(test_iptables_rejects_star_outside_inbound_ports),
        cmocka_unit_test(test_iptables_rejects_bad_cidr),
        cmocka_unit_test(test_iptables_rejects_ipv6_cidr_by_name),
        cmocka_unit_test(test_iptables_rejects_missing_value),
        cmocka_unit_test(test_iptables_rejects_bad_uid),
        cmocka_unit_test(test_iptables_rejects_unknown_flag),
        cmocka_unit_test(test_iptables_rejects_unknown_or_missing_action),
        cmocka_unit_test(test_iptables_rejects_too_many_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
