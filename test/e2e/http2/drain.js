// An HTTP/2 client with one request in flight (URL, answered slowly) that reports what the
// server does meanwhile: "goaway" when a GOAWAY comes, the response's status and body when it
// ends, "closed" when the connection closes. Uses Node's own http2 module.
// usage: node drain.js URL
'use strict';
const http2 = require('http2');
const u = new URL(process.argv[2]);
const session = http2.connect(u.origin);
session.on('goaway', (code) => console.log('goaway ' + code));
session.on('close', () => console.log('closed'));
session.on('error', (e) => console.log('session error ' + e.message));
const req = session.request({ ':path': u.pathname });
let body = '', status = 0;
req.on('response', (h) => { status = h[':status']; });
req.on('data', (d) => { body += d; });
req.on('end', () => { console.log('response ' + status + ' ' + body.trim()); session.close(); });
req.on('error', (e) => console.log('stream error ' + e.message));
