// The gRPC server at the far end of a mesh path: @grpc/grpc-js serving meshtest.Mesh
// (mesh.proto) over plaintext h2c. Every reply names the server (--name), so a story can tell
// endpoints apart, and the :authority the call arrived with.
//   node server.js [--listen HOST:PORT] [--name NAME] [--port-file FILE]
// Port 0 (the default) lets the kernel choose; the port bound is printed as
// "listening on HOST:PORT" and, with --port-file, written to FILE (whole, by a rename). One line
// per call goes to stdout ("call METHOD authority=A"). SIGTERM stops it with status 0.
'use strict';
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

function usage(why) {
    console.error(`server.js: ${why}\n` +
        'usage: node server.js [--listen HOST:PORT] [--name NAME] [--port-file FILE]');
    process.exit(2);
}

const opts = {listen: '127.0.0.1:0', name: 'server', portFile: ''};
for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    const v = process.argv[i + 1];
    if (v === undefined) usage(`${a} needs a value`);
    if (a === '--listen') opts.listen = v;
    else if (a === '--name') opts.name = v;
    else if (a === '--port-file') opts.portFile = v;
    else usage(`unknown argument '${a}'`);
    i++;
}

const def = loader.loadSync(path.join(__dirname, 'mesh.proto'),
    {keepCase: true, longs: Number, defaults: true});
const Mesh = grpc.loadPackageDefinition(def).meshtest.Mesh;
const MiB = 1024 * 1024;

function logCall(method, call) {
    console.log(`call ${method} authority=${call.getHost()}`);
}

// Request metadata whose name starts with "x-" comes back twice: as a response header of the
// same name and as a trailer named "trailer-" + name (so "-bin" values stay binary).
function echoed(md) {
    const headers = new grpc.Metadata();
    const trailers = new grpc.Metadata();
    for (const key of Object.keys(md.getMap())) {
        if (!key.startsWith('x-')) continue;
        for (const v of md.get(key)) {
            headers.add(key, v);
            trailers.add(`trailer-${key}`, v);
        }
    }
    return {headers, trailers};
}

function reply(call, fields) {
    return Object.assign({server: opts.name, authority: call.getHost()}, fields);
}

const service = {
    Unary(call, cb) {
        logCall('Unary', call);
        const {headers, trailers} = echoed(call.metadata);
        call.sendMetadata(headers);
        cb(null, reply(call, {text: call.request.text, payload: call.request.payload}), trailers);
    },

    ServerStream(call) {
        logCall('ServerStream', call);
        const {count, size} = call.request;
        let i = 0;
        // Writes until grpc-js says its buffer is full, then again on 'drain': flow control
        // from the client reaches back here.
        const more = () => {
            while (i < count) {
                const ok = call.write(reply(call, {index: i, payload: Buffer.alloc(size, i & 0xff)}));
                i++;
                if (!ok) return call.once('drain', more);
            }
            call.end();
        };
        call.on('cancelled', () => { i = count; });
        more();
    },

    ClientStream(call, cb) {
        logCall('ClientStream', call);
        let messages = 0;
        let bytes = 0;
        const texts = [];
        call.on('data', (m) => {
            messages++;
            bytes += m.payload.length;
            texts.push(m.text);
        });
        call.on('end', () => cb(null, reply(call, {messages, bytes, text: texts.join(',')})));
    },

    Bidi(call) {
        logCall('Bidi', call);
        let index = 0;
        call.on('data', (m) => {
            call.write(reply(call, {index: index++, text: m.text, payload: m.payload}));
        });
        call.on('end', () => call.end());
    },

    Fail(call, cb) {
        logCall('Fail', call);
        const headers = new grpc.Metadata();
        headers.set('x-fail-stage', 'headers');
        call.sendMetadata(headers);
        const trailers = new grpc.Metadata();
        trailers.set('x-fail-reason', 'chosen');
        trailers.set('x-fail-detail-bin', Buffer.from([0xff, 0x00, 0xfe, 0x80]));
        trailers.set('x-mesh-server', opts.name);
        cb({code: call.request.code, details: call.request.message, metadata: trailers});
    },

    FailEarly(call, cb) {
        logCall('FailEarly', call);
        // Nothing sent before the status: grpc-js answers with one HEADERS frame that ends the
        // stream (a trailers-only response).
        cb({code: call.request.code, details: call.request.message});
    },

    Sleep(call, cb) {
        logCall('Sleep', call);
        const timer = setTimeout(() => cb(null, reply(call, {text: 'slept'})), call.request.sleep_ms);
        call.on('cancelled', () => {
            clearTimeout(timer);
            console.log('sleep cancelled');
        });
    },

    WhoAmI(call, cb) {
        logCall('WhoAmI', call);
        cb(null, reply(call, {}));
    },
};

const server = new grpc.Server({
    'grpc.max_receive_message_length': 16 * MiB,
    'grpc.max_send_message_length': 16 * MiB,
});
server.addService(Mesh.service, service);
server.bindAsync(opts.listen, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
        console.error(`server.js: cannot listen on ${opts.listen}: ${err.message}`);
        process.exit(1);
    }
    const host = opts.listen.slice(0, opts.listen.lastIndexOf(':'));
    if (opts.portFile) {
        fs.writeFileSync(`${opts.portFile}.tmp`, `${port}\n`);
        fs.renameSync(`${opts.portFile}.tmp`, opts.portFile);
    }
    console.log(`listening on ${host}:${port} name=${opts.name}`);
});

process.on('SIGTERM', () => {
    server.forceShutdown();
    process.exit(0);
});
