// An h2c (HTTP/2 over cleartext, prior knowledge) app for test/e2e/test_http2_upstream.sh, on
// Node's built-in http2 module. Usage: node server.js PORT [MAX_CONCURRENT_STREAMS [TLS_DIR [h1]]]
// (0: no stream limit). With TLS_DIR (cert-chain.pem, key.pem) it serves TLS with ALPN h2, or,
// given h1, HTTP/1.1 over TLS only (ALPN http/1.1): a peer that cannot speak HTTP/2.
//   /hello        200 "hello METHOD PATH" with the request's headers as JSON on a second line
//   /sum          the body's sha256 and length ("<hex> <bytes>")
//   /trailers     a body, then trailers x-checksum: abc123
//   /slow?ms=N    200 "slow" after N ms
//   /reset        RST_STREAM(INTERNAL_ERROR), no response
//   /goaway       200 "goaway", then GOAWAY (last stream: this one) on its connection
//   /big?mb=N     N MiB of 'x', written as fast as flow control lets it
//   /sessions     how many connections the app accepted
'use strict';
const http2 = require('http2');
const https = require('https');
const crypto = require('crypto');
const fs = require('fs');

const port = Number(process.argv[2]);
const maxStreams = Number(process.argv[3] || 0);
const settings = maxStreams ? { maxConcurrentStreams: maxStreams } : {};
const tlsDir = process.argv[4];
let sessions = 0;

if (tlsDir && process.argv[5] === 'h1') {
    const tls = { cert: fs.readFileSync(`${tlsDir}/cert-chain.pem`),
        key: fs.readFileSync(`${tlsDir}/key.pem`), ALPNProtocols: ['http/1.1'] };
    https.createServer(tls, (req, res) => res.end('http/1.1 only\n')).listen(port, '127.0.0.1');
    return;
}
const server = tlsDir
    ? http2.createSecureServer({ settings, cert: fs.readFileSync(`${tlsDir}/cert-chain.pem`),
        key: fs.readFileSync(`${tlsDir}/key.pem`) })
    : http2.createServer({ settings });
server.on('session', () => { sessions++; });
server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    // The request is read to its end everywhere: a stream whose request side is still open
    // when the response was handed to Node is reset with NO_ERROR, which may overtake DATA
    // frames still waiting for the client's window.
    if (!headers[':path'].startsWith('/sum'))
        stream.resume();
    const url = new URL(headers[':path'], 'http://x');
    const method = headers[':method'];
    switch (url.pathname) {
    case '/hello': {
        const body = `hello ${method} ${url.pathname}\n${JSON.stringify(headers)}\n`;
        stream.respond({ ':status': 200, 'content-type': 'text/plain',
            'content-length': Buffer.byteLength(body) }, { endStream: method === 'HEAD' });
        if (method !== 'HEAD')
            stream.end(body);
        return;
    }
    case '/sum': {
        const h = crypto.createHash('sha256');
        let n = 0;
        stream.on('data', (d) => { h.update(d); n += d.length; });
        stream.on('end', () => {
            stream.respond({ ':status': 200 });
            stream.end(`${h.digest('hex')} ${n}\n`);
        });
        return;
    }
    case '/trailers':
        stream.respond({ ':status': 200 }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc123' }));
        stream.end('body with trailers\n');
        return;
    case '/slow':
        setTimeout(() => {
            if (stream.destroyed) return;
            stream.respond({ ':status': 200 });
            stream.end('slow\n');
        }, Number(url.searchParams.get('ms') || 300));
        return;
    case '/reset':
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        return;
    case '/goaway':
        stream.respond({ ':status': 200 });
        stream.end('goaway\n');
        stream.session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
        return;
    case '/big': {
        const total = Number(url.searchParams.get('mb') || 1) << 20;
        const chunk = Buffer.alloc(64 << 10, 'x');
        let sent = 0;
        stream.respond({ ':status': 200, 'content-length': total });
        const pump = () => {
            while (sent < total) {
                const n = Math.min(chunk.length, total - sent);
                sent += n;
                if (!stream.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
                    stream.once('drain', pump);
                    return;
                }
            }
            stream.end();
        };
        pump();
        return;
    }
    case '/sessions':
        stream.respond({ ':status': 200 });
        stream.end(`${sessions}\n`);
        return;
    default:
        stream.respond({ ':status': 404 });
        stream.end('not found\n');
    }
});
server.listen(port, '127.0.0.1');
