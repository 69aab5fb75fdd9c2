// An HTTP/2 client that asks for URL and then stops reading (its stream paused: the windows fill
// and stay full) for HOLD_MS, then reads the rest and prints the bytes it got. What a stalled
// consumer looks like to a proxy. Uses Node's own http2 module.
// usage: node slowread.js URL HOLD_MS
'use strict';
const http2 = require('http2');
const [url, hold] = [process.argv[2], Number(process.argv[3])];
const u = new URL(url);
const session = http2.connect(u.origin);
session.on('error', (e) => { console.log('session error ' + e.message); process.exit(1); });
const req = session.request({ ':path': u.pathname });
let got = 0;
req.on('response', () => {
    req.pause();
    console.log('paused');
    setTimeout(() => { console.log('reading'); req.resume(); }, hold);
});
req.on('data', (d) => { got += d.length; });
req.on('end', () => { console.log('got ' + got); session.close(); });
req.on('error', (e) => { console.log('stream error ' + e.message); process.exit(1); });
