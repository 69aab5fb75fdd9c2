// An HTTP/2 client that opens a stream and resets it (RST_STREAM CANCEL) after WAIT ms, before
// its response came: what a caller that gave up does. Uses Node's own http2 module.
// usage: node reset.js URL WAIT_MS
'use strict';
const http2 = require('http2');
const [url, wait] = [process.argv[2], Number(process.argv[3])];
const u = new URL(url);
const session = http2.connect(u.origin);
session.on('error', (e) => { console.log('session error ' + e.message); process.exit(1); });
const req = session.request({ ':path': u.pathname });
req.on('response', () => { console.log('response came before the reset'); process.exit(1); });
req.on('error', () => {});
setTimeout(() => {
    req.close(http2.constants.NGHTTP2_CANCEL);
    setTimeout(() => { console.log('reset'); session.close(); }, 200);
}, wait);
