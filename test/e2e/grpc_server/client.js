// Drives test/tools/grpc_echo_server with @grpc/grpc-js and @grpc/proto-loader (echo.proto):
// one "PASS: what" or "FAIL: what: why" line per check, in a fixed order and number whatever
// happens, for test/e2e/test_grpc_server.sh to count.
//   node client.js PLAIN_PORT TLS_PORT CERTS_DIR
'use strict';
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const [plainPort, tlsPort, certs] = process.argv.slice(2);
const def = loader.loadSync(path.join(__dirname, 'echo.proto'), {keepCase: true});
const Echo = grpc.loadPackageDefinition(def).echo.Echo;

function check(name, ok, why) {
    console.log(ok ? `PASS: ${name}` : `FAIL: ${name}: ${why}`);
}

const plain = new Echo(`127.0.0.1:${plainPort}`, grpc.credentials.createInsecure());

function unary(client, text, opts = {}) {
    return new Promise((resolve) => {
        const md = new grpc.Metadata();
        if (opts.echo) md.set('x-echo', opts.echo);
        // The callback and the status (with the trailers) come in either order: both count.
        const r = {headers: null, trailers: null};
        let left = 2;
        const done = () => { if (--left === 0) resolve(r); };
        const call = client.Unary({text}, md, {deadline: opts.deadline}, (err, reply) => {
            r.err = err;
            r.reply = reply;
            done();
        });
        call.on('metadata', (m) => { r.headers = m; });
        call.on('status', (s) => { r.trailers = s.metadata; done(); });
        if (opts.cancelAfter) setTimeout(() => call.cancel(), opts.cancelAfter);
    });
}

function describe(r) {
    return r.err ? `${grpc.status[r.err.code]}: ${r.err.details}` : JSON.stringify(r.reply);
}

async function unaryChecks() {
    let r = await unary(plain, 'hello', {echo: 'meta-1'});
    check('unary echoes the message', !r.err && r.reply.text === 'hello', describe(r));
    const h = r.headers && r.headers.get('x-echo')[0];
    check('request metadata comes back as a response header', h === 'meta-1', `x-echo ${h}`);
    const t = r.trailers && r.trailers.get('x-echo-trailer')[0];
    check('and as a trailer', t === 'meta-1', `x-echo-trailer ${t}`);

    r = await unary(plain, 'status:7:denied here');
    check('a status and message the method chose reach the client',
        r.err && r.err.code === grpc.status.PERMISSION_DENIED && r.err.details === 'denied here',
        describe(r));
    r = await unary(plain, 'status:3:bad % \u00e9t\u00e9');
    check('a message with % and UTF-8 survives its percent-encoding',
        r.err && r.err.code === 3 && r.err.details === 'bad % \u00e9t\u00e9', describe(r));

    r = await unary(plain, 'sleep', {deadline: Date.now() + 300});
    check('a deadline that passes is DEADLINE_EXCEEDED',
        r.err && r.err.code === grpc.status.DEADLINE_EXCEEDED, describe(r));
    r = await unary(plain, 'sleep', {cancelAfter: 200});
    check('a cancelled call is CANCELLED', r.err && r.err.code === grpc.status.CANCELLED,
        describe(r));

    r = await unary(plain, 'x'.repeat(2 * 1024 * 1024));
    check('a request over the server\'s 1 MiB limit is RESOURCE_EXHAUSTED',
        r.err && r.err.code === grpc.status.RESOURCE_EXHAUSTED, describe(r));

    const rs = await Promise.all(Array.from({length: 50}, (_, i) => unary(plain, `p${i}`)));
    const bad = rs.filter((x, i) => x.err || x.reply.text !== `p${i}`);
    check('50 concurrent calls on one connection all answered', bad.length === 0,
        `${bad.length} wrong, first ${bad.length && describe(bad[0])}`);

    const unknown = await new Promise((resolve) => plain.makeUnaryRequest('/echo.Echo/Nope',
        (x) => x, (x) => x, Buffer.alloc(0), (err) => resolve(err)));
    check('an unknown method is UNIMPLEMENTED',
        unknown && unknown.code === grpc.status.UNIMPLEMENTED, unknown && unknown.details);
}

function serverStream(text) {
    return new Promise((resolve) => {
        const got = [];
        const call = plain.ServerStream({text});
        call.on('data', (m) => got.push(m.text));
        call.on('error', (err) => resolve({got, err}));
        call.on('status', (s) => { if (s.code === 0) resolve({got, err: null}); });
    });
}

async function streamChecks() {
    let r = await serverStream('5:abc');
    const want = ['abc-0', 'abc-1', 'abc-2', 'abc-3', 'abc-4'];
    check('a server stream sends its messages in order, then OK',
        !r.err && JSON.stringify(r.got) === JSON.stringify(want), JSON.stringify(r));
    r = await serverStream('3000:m');
    check('a server stream of 3,000 messages arrives whole',
        !r.err && r.got.length === 3000 && r.got[2999] === 'm-2999',
        `${r.got.length} messages, ${r.err && r.err.details}`);

    const bidi = await new Promise((resolve) => {
        const got = [];
        const call = plain.Bidi();
        let sent = 0;
        call.on('data', (m) => {
            got.push(m.text);
            if (sent < 200) call.write({text: `b${sent++}`}); // ping-pong: one at a time
            else if (got.length === 200) call.end();
        });
        call.on('error', (err) => resolve({got, err}));
        call.on('status', (s) => { if (s.code === 0) resolve({got, err: null}); });
        call.write({text: `b${sent++}`});
    });
    const inOrder = bidi.got.every((t, i) => t === `b${i}`);
    check('bidi ping-pong of 200 messages, then OK on half-close',
        !bidi.err && bidi.got.length === 200 && inOrder,
        `${bidi.got.length} messages, ${bidi.err && bidi.err.details}`);
}

async function tlsChecks() {
    const read = (f) => fs.readFileSync(path.join(certs, f));
    const withCert = new Echo(`127.0.0.1:${tlsPort}`,
        grpc.credentials.createSsl(read('root-a.pem'), read('client.key'), read('client.pem')),
        {'grpc.ssl_target_name_override': 'server.default.svc.cluster.local'});
    let r = await unary(withCert, 'secure');
    const peer = r.headers && r.headers.get('x-peer-id')[0];
    check('TLS with a client certificate: the call sees its SPIFFE ID',
        !r.err && r.reply.text === 'secure' &&
        peer === 'spiffe://cluster.local/ns/default/sa/client', `${describe(r)}, peer ${peer}`);
    withCert.close();

    const noCert = new Echo(`127.0.0.1:${tlsPort}`, grpc.credentials.createSsl(read('root-a.pem')),
        {'grpc.ssl_target_name_override': 'server.default.svc.cluster.local'});
    r = await unary(noCert, 'secure', {deadline: Date.now() + 5000});
    check('TLS without a client certificate is refused', r.err &&
        (r.err.code === grpc.status.UNAVAILABLE || r.err.code === grpc.status.DEADLINE_EXCEEDED),
        describe(r));
    noCert.close();
}

(async () => {
    await unaryChecks();
    await streamChecks();
    await tlsChecks();
    plain.close();
})().catch((e) => {
    console.log(`FAIL: the client crashed: ${e.stack}`);
    process.exitCode = 1;
});
