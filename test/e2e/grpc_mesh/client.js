// The gRPC client at the near end of a mesh path: @grpc/grpc-js calling meshtest.Mesh
// (mesh.proto) on a target, through whatever stands between (a sidecar, a proxy).
//   node client.js --target HOST:PORT [--authority NAME] [--server NAME] [--checks a,b,...]
//   node client.js --target HOST:PORT [--authority NAME] --load N [--concurrency C]
//                  [--fail-one-in K] [--deadline-ms MS]
//   node client.js --list-checks
// Checks mode runs the named checks (all of them by default, in CHECKS order) one after
// another and prints one line each, "ok NAME" or "not ok NAME: why"; it exits 1 if any failed.
// --authority sets the :authority of every call (through a sidecar the target is the sidecar,
// the authority names the service); --server is the name the answering server must have.
// Load mode fires N unary calls, C at a time (every K-th one a Fail that ends UNAVAILABLE), and
// prints "status CODE_NAME COUNT" for each status seen, "server NAME COUNT" for each server
// that answered an OK call, and "total N"; it exits 0 once every call has ended.
'use strict';
const crypto = require('crypto');
const http2 = require('http2');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const CHECKS = ['unary', 'server-stream', 'client-stream', 'bidi', 'status', 'trailers-only',
    'deadline', 'metadata', 'large-unary', 'large-stream', 'whoami'];
const MiB = 1024 * 1024;
const CHECK_SECONDS = 30; // a check that has not ended by then fails: nothing hangs the story

function usage(why) {
    console.error(`client.js: ${why}\nusage: node client.js --target HOST:PORT [--authority NAME] ` +
        '[--server NAME] [--checks a,b,...] | [--load N [--concurrency C] [--fail-one-in K] ' +
        `[--deadline-ms MS]]\nchecks: ${CHECKS.join(' ')}`);
    process.exit(2);
}

const opts = {target: '', authority: '', server: '', checks: CHECKS, load: 0, concurrency: 1,
    failOneIn: 0, deadlineMs: 30000};
if (process.argv[2] === '--list-checks') {
    console.log(CHECKS.join('\n'));
    process.exit(0);
}
for (let i = 2; i < process.argv.length; i += 2) {
    const a = process.argv[i];
    const v = process.argv[i + 1];
    if (v === undefined) usage(`${a} needs a value`);
    const n = Number(v);
    if (a === '--target') opts.target = v;
    else if (a === '--authority') opts.authority = v;
    else if (a === '--server') opts.server = v;
    else if (a === '--checks') opts.checks = v.split(',').filter((c) => c);
    else if (a === '--load' && n > 0) opts.load = n;
    else if (a === '--concurrency' && n > 0) opts.concurrency = n;
    else if (a === '--fail-one-in' && n > 0) opts.failOneIn = n;
    else if (a === '--deadline-ms' && n > 0) opts.deadlineMs = n;
    else usage(`bad argument '${a} ${v}'`);
}
if (!opts.target) usage('--target is required');
for (const c of opts.checks) if (!CHECKS.includes(c)) usage(`unknown check '${c}'`);
const authority = opts.authority || opts.target;

const def = loader.loadSync(path.join(__dirname, 'mesh.proto'),
    {keepCase: true, longs: Number, defaults: true});
const Mesh = grpc.loadPackageDefinition(def).meshtest.Mesh;
const channelOpts = {
    'grpc.max_receive_message_length': 16 * MiB,
    'grpc.max_send_message_length': 16 * MiB,
};
if (opts.authority) channelOpts['grpc.default_authority'] = opts.authority;
const client = new Mesh(opts.target, grpc.credentials.createInsecure(), channelOpts);

const deadline = (ms) => ({deadline: Date.now() + ms});
const status = (code) => grpc.status[code] || `code ${code}`;
const describe = (err) => `${status(err.code)}: ${err.details}`;

// A unary call, with its response headers (null when none came) and trailers.
function unary(method, req, md = new grpc.Metadata(), ms = 20000) {
    return new Promise((resolve) => {
        const r = {err: null, reply: null, headers: null, trailers: null};
        let left = 2; // the callback and the status come in either order: wait for both
        const done = () => { if (--left === 0) resolve(r); };
        const call = client[method](req, md, deadline(ms), (err, reply) => {
            r.err = err;
            r.reply = reply;
            done();
        });
        call.on('metadata', (m) => { r.headers = m; });
        call.on('status', (s) => { r.trailers = s.metadata; done(); });
    });
}

function expectServer(reply) {
    if (!reply.server) return 'the reply names no server';
    if (opts.server && reply.server !== opts.server) {
        return `answered by '${reply.server}', want '${opts.server}'`;
    }
    return '';
}

// Each check resolves to '' (passed) or why it failed.
const checks = {
    async unary() {
        const r = await unary('Unary', {text: 'hello mesh'});
        if (r.err) return describe(r.err);
        if (r.reply.text !== 'hello mesh') return `text '${r.reply.text}'`;
        return expectServer(r.reply);
    },

    'server-stream': () => new Promise((resolve) => {
        const want = 100;
        const got = [];
        const call = client.ServerStream({count: want, size: 100}, deadline(20000));
        call.on('data', (m) => got.push(m));
        call.on('error', (err) => resolve(describe(err)));
        call.on('status', (s) => {
            if (s.code !== grpc.status.OK) return; // 'error' says why
            if (got.length !== want) return resolve(`${got.length} replies, want ${want}`);
            const bad = got.findIndex((m, i) => m.index !== i || m.payload.length !== 100 ||
                m.payload[0] !== (i & 0xff));
            resolve(bad < 0 ? '' : `reply ${bad} is out of order or wrong`);
        });
    }),

    'client-stream': () => new Promise((resolve) => {
        const n = 50;
        const call = client.ClientStream(deadline(20000), (err, reply) => {
            if (err) return resolve(describe(err));
            const texts = Array.from({length: n}, (_, i) => `m${i}`).join(',');
            if (reply.messages !== n || reply.bytes !== n * 1000) {
                return resolve(`server counted ${reply.messages} messages, ${reply.bytes} bytes`);
            }
            resolve(reply.text === texts ? '' : `texts arrived as '${reply.text.slice(0, 60)}...'`);
        });
        for (let i = 0; i < n; i++) call.write({text: `m${i}`, payload: Buffer.alloc(1000, i)});
        call.end();
    }),

    // Ping-pong: each message is sent only once the previous one came back, so both directions
    // of one stream are open together for the whole call.
    bidi: () => new Promise((resolve) => {
        const rounds = 20;
        let i = 0;
        let why = '';
        const call = client.Bidi(deadline(20000));
        call.on('data', (m) => {
            if (!why && (m.index !== i || m.text !== `ping ${i}`)) {
                why = `reply ${i} is index ${m.index} text '${m.text}'`;
            }
            if (++i < rounds) call.write({text: `ping ${i}`});
            else call.end();
        });
        call.on('error', (err) => resolve(describe(err)));
        call.on('status', (s) => {
            if (s.code !== grpc.status.OK) return;
            resolve(why || (i === rounds ? '' : `${i} of ${rounds} replies`));
        });
        call.write({text: 'ping 0'});
    }),

    // A status the method chose, after response headers, with a message that needs
    // percent-encoding and custom trailers (one of them binary).
    async status() {
        const message = 'denied: 100% s\u00fbr';
        const r = await unary('Fail', {code: grpc.status.PERMISSION_DENIED, message});
        if (!r.err) return 'the call succeeded';
        if (r.err.code !== grpc.status.PERMISSION_DENIED || r.err.details !== message) {
            return `${describe(r.err)}, want PERMISSION_DENIED: ${message}`;
        }
        const stage = r.headers && r.headers.get('x-fail-stage')[0];
        if (stage !== 'headers') return `response headers x-fail-stage '${stage}'`;
        const reason = r.trailers && r.trailers.get('x-fail-reason')[0];
        if (reason !== 'chosen') return `trailer x-fail-reason '${reason}'`;
        const detail = r.trailers && r.trailers.get('x-fail-detail-bin')[0];
        if (!Buffer.isBuffer(detail) || !detail.equals(Buffer.from([0xff, 0x00, 0xfe, 0x80]))) {
            return `trailer x-fail-detail-bin ${detail && detail.toString('hex')}`;
        }
        return '';
    },

    'trailers-only': trailersOnly,

    async deadline() {
        const r = await unary('Sleep', {sleep_ms: 10000}, new grpc.Metadata(), 300);
        if (!r.err) return 'the call succeeded';
        return r.err.code === grpc.status.DEADLINE_EXCEEDED ? '' : describe(r.err);
    },

    // Text and binary ("-bin", bytes that are not UTF-8) metadata come back as response
    // headers and as trailers.
    async metadata() {
        const bin = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0x0a]);
        const md = new grpc.Metadata();
        md.set('x-mesh-text', 'hello mesh');
        md.set('x-mesh-data-bin', bin);
        const r = await unary('Unary', {text: 'md'}, md);
        if (r.err) return describe(r.err);
        // '' when md holds want (a string, or bytes) under key, else what it holds.
        const holds = (md, key, want) => {
            const v = md ? md.get(key)[0] : undefined;
            const same = Buffer.isBuffer(want) ? Buffer.isBuffer(v) && v.equals(want) : v === want;
            return same ? '' : `${key} is ${Buffer.isBuffer(v) ? v.toString('hex') : `'${v}'`}`;
        };
        return holds(r.headers, 'x-mesh-text', 'hello mesh') ||
            holds(r.headers, 'x-mesh-data-bin', bin) ||
            holds(r.trailers, 'trailer-x-mesh-text', 'hello mesh') ||
            holds(r.trailers, 'trailer-x-mesh-data-bin', bin);
    },

    async 'large-unary'() {
        const payload = crypto.randomBytes(MiB);
        const r = await unary('Unary', {text: 'large', payload});
        if (r.err) return describe(r.err);
        return r.reply.payload.equals(payload) ? '' :
            `${r.reply.payload.length} bytes came back, not the ${MiB} sent`;
    },

    // Eight 1 MiB messages written at once on a bidi stream: more than the default windows
    // hold in either direction, so both ends must wait for WINDOW_UPDATEs.
    'large-stream': () => new Promise((resolve) => {
        const sent = Array.from({length: 8}, () => crypto.randomBytes(MiB));
        let i = 0;
        let why = '';
        const call = client.Bidi(deadline(30000));
        call.on('data', (m) => {
            if (!why && (i >= sent.length || !m.payload.equals(sent[i]))) {
                why = `message ${i} came back different`;
            }
            i++;
        });
        call.on('error', (err) => resolve(describe(err)));
        call.on('status', (s) => {
            if (s.code !== grpc.status.OK) return;
            resolve(why || (i === sent.length ? '' : `${i} of ${sent.length} messages came back`));
        });
        for (const p of sent) call.write({payload: p});
        call.end();
    }),

    async whoami() {
        const r = await unary('WhoAmI', {});
        if (r.err) return describe(r.err);
        if (r.reply.authority !== authority) {
            return `the server saw :authority '${r.reply.authority}', want '${authority}'`;
        }
        return expectServer(r.reply);
    },
};

// Trailers-only, seen on the wire: a raw HTTP/2 request to FailEarly must be answered by one
// HEADERS frame that ends the stream and carries :status 200 and grpc-status, with no DATA and
// no separate trailers.
function trailersOnly() {
    return new Promise((resolve) => {
        const message = 'nothing here';
        // meshtest.Req{code: 5, message}, hand-encoded, in one uncompressed gRPC message.
        const req = Buffer.concat([Buffer.from([0x28, grpc.status.NOT_FOUND, 0x32, message.length]),
            Buffer.from(message)]);
        const frame = Buffer.alloc(5 + req.length);
        frame.writeUInt32BE(req.length, 1);
        req.copy(frame, 5);
        const session = http2.connect(`http://${opts.target}`);
        let why = 'no response';
        const finish = () => {
            session.close();
            resolve(why);
        };
        session.on('error', (err) => { why = `connection: ${err.message}`; finish(); });
        const stream = session.request({
            ':method': 'POST', ':path': '/meshtest.Mesh/FailEarly', ':authority': authority,
            'content-type': 'application/grpc', te: 'trailers',
        });
        let data = 0;
        let trailers = false;
        stream.on('response', (h, flags) => {
            const ended = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
            if (!ended) why = 'the response headers did not end the stream';
            else if (h[':status'] !== 200) why = `:status ${h[':status']}`;
            else if (h['grpc-status'] !== String(grpc.status.NOT_FOUND)) {
                why = `grpc-status ${h['grpc-status']}`;
            }
            else if (decodeURIComponent(h['grpc-message'] || '') !== message) {
                why = `grpc-message '${h['grpc-message']}'`; // percent-encoded on the wire
            }
            else why = '';
        });
        stream.on('trailers', () => { trailers = true; });
        stream.on('data', (d) => { data += d.length; });
        stream.on('error', (err) => { why = `stream: ${err.message}`; });
        stream.on('close', () => {
            if (!why && (data || trailers)) {
                why = `${data} DATA bytes${trailers ? ' and trailers' : ''} followed`;
            }
            finish();
        });
        stream.end(frame);
    });
}

async function runChecks() {
    let failed = 0;
    for (const name of opts.checks) {
        let timer;
        const timeout = new Promise((resolve) => {
            timer = setTimeout(() => resolve(`no result within ${CHECK_SECONDS} s`),
                CHECK_SECONDS * 1000);
        });
        let why;
        try {
            why = await Promise.race([checks[name](), timeout]);
        } catch (err) {
            why = `threw ${err && err.stack ? err.stack.split('\n')[0] : err}`;
        }
        clearTimeout(timer);
        if (why) failed++;
        console.log(why ? `not ok ${name}: ${why}` : `ok ${name}`);
    }
    return failed ? 1 : 0;
}

async function runLoad() {
    const statuses = new Map();
    const servers = new Map();
    const bump = (m, k) => m.set(k, (m.get(k) || 0) + 1);
    let next = 0;
    const worker = async () => {
        while (next < opts.load) {
            const n = ++next;
            const fail = opts.failOneIn && n % opts.failOneIn === 0;
            const r = fail ?
                await unary('Fail', {code: grpc.status.UNAVAILABLE, message: 'chosen'},
                    new grpc.Metadata(), opts.deadlineMs) :
                await unary('Unary', {text: `call ${n}`}, new grpc.Metadata(), opts.deadlineMs);
            bump(statuses, status(r.err ? r.err.code : grpc.status.OK));
            if (!r.err) bump(servers, r.reply.server);
        }
    };
    await Promise.all(Array.from({length: Math.min(opts.concurrency, opts.load)}, worker));
    for (const [k, v] of [...statuses].sort()) console.log(`status ${k} ${v}`);
    for (const [k, v] of [...servers].sort()) console.log(`server ${k} ${v}`);
    console.log(`total ${opts.load}`);
    return 0;
}

(opts.load ? runLoad() : runChecks()).then((rc) => {
    client.close();
    process.exit(rc);
});
