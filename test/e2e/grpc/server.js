// The peers of test_grpc_client.sh, on 127.0.0.1 only, every port chosen by the kernel:
//   grpc:   @grpc/grpc-js with identity (Buffer) serializers, service test.Echo
//   tls:    the same service over TLS (test/data/certs server.pem, ALPN h2), when asked
//   raw:    node's own http2 (h2c) server for what grpc-js will not do: exact DATA framing,
//           non-gRPC answers, resets, GOAWAY, a connection that dies mid-stream
//   silent: accepts and never says a word (connect timeout: no SETTINGS ever comes)
//   mute:   sends its SETTINGS and then ignores everything (keepalive PINGs go unanswered)
//   closed: a port that was bound and closed again (connection refused)
// Prints one JSON line with the ports once all listen, then serves until killed.
'use strict';
const fs = require('fs');
const http2 = require('http2');
const net = require('net');
const path = require('path');
const grpc = require('@grpc/grpc-js');

const certs = path.join(__dirname, '..', '..', 'data', 'certs');
const id = (x) => x;

function method(name, requestStream, responseStream) {
    return {
        path: `/test.Echo/${name}`, requestStream, responseStream,
        requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id,
    };
}

const service = {
    Unary: method('Unary', false, false),
    Metadata: method('Metadata', false, false),
    Fail: method('Fail', false, false),
    Hang: method('Hang', false, false),
    Big: method('Big', false, false),
    Bidi: method('Bidi', true, true),
    Many: method('Many', false, true),
    Sink: method('Sink', true, false),
};

// Deterministic message i of a Many stream: size (i * 37) % max, bytes from i.
function manyMessage(i, max) {
    const b = Buffer.alloc((i * 37) % max);
    for (let k = 0; k < b.length; k++) b[k] = (i + k) & 0xff;
    return b;
}

const impl = {
    Unary: (call, cb) => cb(null, call.request),
    Metadata: (call, cb) => {
        const v = call.metadata.get('x-echo')[0] || '';
        const deadline = call.getDeadline() !== Infinity ? 'yes' : 'no';
        const ua = String(call.metadata.get('user-agent')[0] || '').startsWith('remora-grpc/');
        cb(null, Buffer.from(`x-echo=${v} deadline=${deadline} ua=${ua}`));
    },
    Fail: (call, cb) => cb({ code: grpc.status.FAILED_PRECONDITION, details: 'no way: 100% wrong ünïcode' }),
    Hang: () => {},
    Big: (call, cb) => cb(null, Buffer.alloc(4096, 7)),
    Bidi: (call) => {
        call.on('data', (m) => call.write(m));
        call.on('end', () => call.end());
    },
    Many: (call) => {
        const [count, max] = call.request.toString().split(',').map(Number);
        for (let i = 0; i < count; i++) call.write(manyMessage(i, max));
        call.end();
    },
    Sink: (call, cb) => {
        let n = 0, bytes = 0;
        call.on('data', (m) => { n++; bytes += m.length; });
        call.on('end', () => cb(null, Buffer.from(`${n} ${bytes}`)));
    },
};

function grpcServer(creds) {
    const s = new grpc.Server();
    s.addService(service, impl);
    return new Promise((resolve, reject) =>
        s.bindAsync('127.0.0.1:0', creds, (err, port) => (err ? reject(err) : resolve(port))));
}

function frame(buf, flag = 0) {
    const h = Buffer.alloc(5);
    h[0] = flag;
    h.writeUInt32BE(buf.length, 1);
    return Buffer.concat([h, buf]);
}

const GRPC_OK = { ':status': 200, 'content-type': 'application/grpc' };

// Sends data one byte per DATA frame: each write waits for the one before it to be taken.
function oneByteAtATime(stream, data, done) {
    let i = 0;
    const next = () => {
        if (i === data.length) return done();
        stream.write(data.subarray(i, i + 1), () => setImmediate(next));
        i++;
    };
    next();
}

function withTrailers(stream, status, message) {
    stream.respond(GRPC_OK, { waitForTrailers: true });
    stream.on('wantTrailers', () => {
        const t = { 'grpc-status': String(status) };
        if (message) t['grpc-message'] = message;
        stream.sendTrailers(t);
    });
}

const raw = {
    '/raw.Split/OneBytePerFrame': (stream) => {
        withTrailers(stream, 0);
        const msgs = Buffer.concat([frame(Buffer.from('split')), frame(Buffer.alloc(0)),
            frame(Buffer.from('across frames'))]);
        oneByteAtATime(stream, msgs, () => stream.end());
    },
    '/raw.Split/ManyPerFrame': (stream) => {
        withTrailers(stream, 0);
        const parts = [];
        for (let i = 0; i < 50; i++) parts.push(frame(Buffer.from(`m${i}`)));
        stream.end(Buffer.concat(parts)); // one write: several messages per DATA frame
    },
    '/raw.Bad/ContentType': (stream) => {
        stream.respond({ ':status': 200, 'content-type': 'text/html' });
        stream.end('<p>not grpc</p>');
    },
    '/raw.Bad/Status503': (stream) => {
        stream.respond({ ':status': 503, 'content-type': 'text/plain' });
        stream.end('busy');
    },
    '/raw.Bad/NoStatus': (stream) => {
        stream.respond(GRPC_OK);
        stream.end(frame(Buffer.from('orphan')));
    },
    '/raw.Bad/Compressed': (stream) => {
        withTrailers(stream, 0);
        stream.end(frame(Buffer.from('zipped?'), 1));
    },
    '/raw.Bad/PartialMessage': (stream) => {
        withTrailers(stream, 0);
        stream.end(frame(Buffer.from('cut short')).subarray(0, 8));
    },
    '/raw.Reset/Refused': (stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM),
    '/raw.Die/MidStream': (stream) => {
        stream.respond(GRPC_OK);
        // The TCP socket itself, so no GOAWAY precedes the end (node forbids destroying
        // it through the session).
        const sock = rawSockets.get(stream.session.socket.remotePort);
        stream.write(frame(Buffer.from('last words')), () => setTimeout(() => sock.destroy(), 50));
    },
    '/raw.Goaway/Hold': (stream) => {
        stream.session.held = stream; // answered once the next stream is refused
    },
    '/raw.Goaway/Refuse': (stream) => {
        // GOAWAY naming the held stream as the last one taken: this one was not, and the
        // client must treat it as never run. (node cannot send a last stream id of 0.)
        const held = stream.session.held;
        stream.session.goaway(http2.constants.NGHTTP2_NO_ERROR, held.id);
        withTrailers(held, 0);
        held.end(frame(Buffer.from('held')));
    },
    '/raw.Goaway/AfterRunning': (stream) => {
        stream.session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
        withTrailers(stream, 0);
        stream.end(frame(Buffer.from('finished anyway')));
    },
};

const rawSockets = new Map(); // client port -> the raw server's TCP socket

function rawServer() {
    const s = http2.createServer();
    s.on('connection', (sock) => {
        const port = sock.remotePort;
        rawSockets.set(port, sock);
        sock.on('close', () => rawSockets.delete(port));
    });
    s.on('stream', (stream, headers) => {
        stream.on('error', () => {});
        const h = raw[headers[':path']];
        if (h) return h(stream, headers);
        stream.respond({ ':status': 404, 'content-type': 'text/plain' });
        stream.end('no such path');
    });
    s.on('sessionError', () => {});
    return listen(s);
}

function listen(s) {
    return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(s.address().port)));
}

function netServer(onConn) {
    const s = net.createServer((sock) => {
        sock.on('error', () => {});
        onConn(sock);
    });
    return listen(s);
}

async function closedPort() {
    const s = net.createServer();
    const port = await listen(s);
    await new Promise((resolve) => s.close(resolve));
    return port;
}

async function main() {
    const ports = {};
    ports.grpc = await grpcServer(grpc.ServerCredentials.createInsecure());
    if (process.argv.includes('--tls')) {
        const read = (f) => fs.readFileSync(path.join(certs, f));
        ports.tls = await grpcServer(grpc.ServerCredentials.createSsl(null,
            [{ private_key: read('server.key'), cert_chain: read('server.pem') }], false));
    }
    ports.raw = await rawServer();
    ports.silent = await netServer((sock) => sock.resume());
    // An empty SETTINGS frame: the connection is up, and then nothing is ever answered.
    ports.mute = await netServer((sock) => {
        sock.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));
        sock.resume();
    });
    ports.closed = await closedPort();
    process.stdout.write(JSON.stringify(ports) + '\n');
}

main().catch((e) => {
    process.stderr.write(`server: ${e.stack || e}\n`);
    process.exit(1);
});
