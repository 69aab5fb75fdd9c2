// The proxyless gRPC client of test/e2e/test_cp_grpc.sh: @grpc/grpc-js with @grpc/grpc-js-xds,
// configured by the bootstrap GRPC_XDS_BOOTSTRAP names (remora-cp as its xDS server). It reads
// one command a line from COMMANDS (a FIFO the story writes), {"id", "target", "n",
// "deadline_ms"}: n unary calls one after the other to xds:///<target> over one channel per
// target (kept for the whole run, as an application keeps its channels), and appends one line
// per command to RESULTS: {"id", "ok": calls that succeeded, "names": {server: calls it
// answered}, "errors": {"CODE: details": count}}. Its own output is grpc-js's traces.
//   node client.js COMMANDS RESULTS
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const grpc = require('@grpc/grpc-js');
const xds = require('@grpc/grpc-js-xds');
const loader = require('@grpc/proto-loader');

xds.register();
const def = loader.loadSync(path.join(__dirname, 'echo.proto'), {keepCase: true});
const Echo = grpc.loadPackageDefinition(def).cpgrpc.Echo;
const [commands, results] = process.argv.slice(2);
const channels = new Map();

function client(target) {
    if (!channels.has(target))
        channels.set(target, new Echo(`xds:///${target}`, grpc.credentials.createInsecure()));
    return channels.get(target);
}

function call(c, deadlineMs) {
    return new Promise((resolve) => {
        c.Unary({text: 'hi'}, {deadline: Date.now() + deadlineMs}, (err, reply) =>
            resolve(err ? {err} : {name: reply.text}));
    });
}

async function run(cmd) {
    const out = {id: cmd.id, ok: 0, names: {}, errors: {}};
    const c = client(cmd.target);
    for (let i = 0; i < cmd.n; i++) {
        const r = await call(c, cmd.deadline_ms);
        if (r.err) {
            const k = `${grpc.status[r.err.code]}: ${r.err.details}`;
            out.errors[k] = (out.errors[k] || 0) + 1;
        } else {
            out.ok++;
            out.names[r.name] = (out.names[r.name] || 0) + 1;
        }
    }
    fs.appendFileSync(results, JSON.stringify(out) + '\n');
}

// Commands run one at a time, in order.
let queue = Promise.resolve();
readline.createInterface({input: fs.createReadStream(commands)}).on('line', (line) => {
    if (line.trim() === '')
        return;
    let cmd;
    try {
        cmd = JSON.parse(line);
    } catch (e) {
        fs.appendFileSync(results, JSON.stringify({error: `not a command: ${line}`}) + '\n');
        return;
    }
    queue = queue.then(() => run(cmd));
}).on('close', () => queue.then(() => {
    channels.forEach((c) => c.close());
    process.exit(0);
}));
