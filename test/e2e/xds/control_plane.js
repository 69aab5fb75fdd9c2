// A scripted xDS control plane for the e2e stories: an independent implementation of Envoy's
// aggregated discovery service (state of the world and delta) on @grpc/grpc-js, with Envoy's
// own .proto files (shipped by @grpc/grpc-js-xds under deps/). It serves the resources of a
// JSON file and pushes them again whenever the file changes, and logs every request a client
// sends as one JSON line, so a story can check ACKs, NACKs, versions, nonces and subscriptions.
//
//   node control_plane.js --resources FILE --log FILE [--port N] [--garbage] [--stdin]
//                         [--tls-cert FILE --tls-key FILE --tls-ca FILE]
//
// FILE: {"version": "1", "resources": {"<type URL>": [<resource as protobuf JSON>, ...]},
// "hold": ["<type URL>", ...]}, where a resource is the message in protobuf's JSON form ("@type"
// for Anys inside it) and the types in "hold" are not answered until the file drops them.
// --garbage: every request is answered with bytes that are no DiscoveryResponse. --stdin: each
// line of stdin is a patch of the same shape: its resources replace or add those of the same
// name, its version (if any) becomes the version, its hold (if any) the held types, and only the
// types it touches (or releases) are pushed, at once (the file is looked at every 50 ms and
// replaces everything); a patch with "changed_only": true sends a state-of-the-world stream only
// its own resources of the types other than listeners and clusters, as the xDS protocol allows
// for those types (a response need not repeat the ones that did not change; Istio's incremental
// EDS pushes do this). --tls-*: mutual TLS (below). Every log line has "t": process.hrtime in milliseconds, taken after a
// response is handed to gRPC and as a request arrives. Prints "listening PORT" once ready.
// Loopback only.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const key = process.argv[i].replace(/^--/, '');
  const next = process.argv[i + 1];
  if (next === undefined || next.startsWith('--')) {
    args[key] = true;
  } else {
    args[key] = next;
    i++;
  }
}
if (!args.resources || !args.log) {
  console.error('usage: control_plane.js --resources FILE --log FILE [--port N]');
  process.exit(2);
}

const deps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const includeDirs = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d));

// Every resource type a story may serve, loaded with protobufjs for encoding into Anys.
const root = new protobuf.Root();
root.resolvePath = (origin, target) => {
  for (const dir of includeDirs) {
    const p = path.join(dir, target);
    if (fs.existsSync(p)) return p;
  }
  return protobuf.util.path.resolve(origin, target);
};
root.loadSync([
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
], {keepCase: true});
root.resolveAll();

const ads = grpc.loadPackageDefinition(
  protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
    keepCase: true, longs: String, enums: String, defaults: false, oneofs: true, includeDirs,
  })).envoy.service.discovery.v3.AggregatedDiscoveryService;

const WILDCARD = new Set([
  'type.googleapis.com/envoy.config.listener.v3.Listener',
  'type.googleapis.com/envoy.config.cluster.v3.Cluster',
]);

function nowMs() {
  return Math.round(Number(process.hrtime.bigint()) / 1e3) / 1e3;
}

function logLine(obj) {
  fs.appendFileSync(args.log, JSON.stringify(Object.assign({t: nowMs()}, obj)) + '\n');
}

// The served state: version, and per type URL a map name -> {version, any}.
let state = {version: '', types: {}, hold: new Set()};

// protobuf's JSON mapping for the well-known types protobufjs's fromObject does not take:
// Durations as "1.5s", wrappers as bare values; Anys ("@type") are followed into.
function fromJson(type, obj) {
  const full = type.fullName.replace(/^\./, '');
  if (full === 'google.protobuf.Duration' && typeof obj === 'string') {
    const sec = parseFloat(obj);
    return {seconds: Math.trunc(sec), nanos: Math.round((sec - Math.trunc(sec)) * 1e9)};
  }
  if (/^google\.protobuf\.\w+Value$/.test(full) && (typeof obj !== 'object' || obj === null)) return {value: obj};
  if (full === 'google.protobuf.Any' && obj && obj['@type']) {
    const inner = root.lookupType(obj['@type'].replace(/^.*\//, ''));
    const body = Object.assign({}, obj);
    delete body['@type'];
    return {type_url: obj['@type'], value: inner.encode(inner.fromObject(fromJson(inner, body))).finish()};
  }
  if (full === 'google.protobuf.Struct' || typeof obj !== 'object' || obj === null) return obj;
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    const f = type.fields[k];
    if (!f || !f.resolvedType || !(f.resolvedType instanceof protobuf.Type)) { out[k] = v; continue; }
    if (f.map) {
      out[k] = Object.fromEntries(Object.entries(v).map(([mk, mv]) => [mk, fromJson(f.resolvedType, mv)]));
    } else if (f.repeated) {
      out[k] = v.map((e) => fromJson(f.resolvedType, e));
    } else {
      out[k] = fromJson(f.resolvedType, v);
    }
  }
  return out;
}

function nameOf(typeUrl, r) {
  return r.name || r.cluster_name || '';
}

// putResources(types, spec, version): the resources of spec, encoded, into types (type URL ->
// name -> {version, any}), replacing those of the same name; returns the type URLs touched.
function putResources(types, spec, version) {
  const touched = [];
  for (const [typeUrl, list] of Object.entries(spec.resources || {})) {
    const type = root.lookupType(typeUrl.replace(/^.*\//, ''));
    if (!types[typeUrl]) types[typeUrl] = new Map();
    for (const r of list) {
      // A resource may be given pre-encoded and broken on purpose: {"@raw": "<base64>", "name": ...}
      const value = r['@raw'] !== undefined ? Buffer.from(r['@raw'], 'base64')
        : Buffer.from(type.encode(type.fromObject(fromJson(type, r))).finish());
      const name = nameOf(typeUrl, r);
      types[typeUrl].set(name, {version, any: {type_url: typeUrl, value}});
    }
    touched.push(typeUrl);
  }
  return touched;
}

function load() {
  const text = fs.readFileSync(args.resources, 'utf8');
  const spec = JSON.parse(text);
  const types = {};
  putResources(types, spec, String(spec.version));
  state = {version: String(spec.version), types, hold: new Set(spec.hold || [])};
}

// patch(spec): a line of --stdin applied to the state; returns the types to push again.
function patch(spec) {
  if (spec.version !== undefined) state.version = String(spec.version);
  const touched = new Set(putResources(state.types, spec, state.version));
  if (spec.changed_only) {
    touched.only = new Map(Object.entries(spec.resources || {}).map(([t, list]) =>
      [t, new Set(list.map((r) => nameOf(t, r)))]));
  }
  if (spec.hold !== undefined) {
    const hold = new Set(spec.hold);
    for (const t of state.hold) if (!hold.has(t)) touched.add(t);
    state.hold = hold;
  }
  return touched;
}

const streams = new Set();
let nonce = 0;

// sotwPush(s, typeUrl, only): the subscribed resources of typeUrl (only: just those of the Set,
// never for listeners and clusters, whose responses are always the whole set).
function sotwPush(s, typeUrl, only) {
  const sub = s.subs.get(typeUrl);
  if (!sub || state.hold.has(typeUrl)) return;
  const all = state.types[typeUrl] || new Map();
  const resources = [];
  const names = [];
  if (WILDCARD.has(typeUrl)) only = undefined;
  for (const [name, r] of all) {
    if (only && !only.has(name)) continue;
    if (WILDCARD.has(typeUrl) && sub.size === 0 ? true : sub.has(name)) {
      resources.push(r.any);
      names.push(name);
    }
  }
  if (only && resources.length === 0) return;
  const n = String(++nonce);
  s.sent.set(typeUrl, n);
  s.call.write({version_info: state.version, type_url: typeUrl, nonce: n, resources});
  logLine({event: 'response', mode: 'sotw', type_url: typeUrl, version_info: state.version, nonce: n, names});
}

function deltaPush(s, typeUrl, initial) {
  const sub = s.subs.get(typeUrl);
  if (!sub || state.hold.has(typeUrl)) return;
  const all = state.types[typeUrl] || new Map();
  const known = s.known.get(typeUrl) || new Map();
  const resources = [];
  const removed = [];
  const wildcard = WILDCARD.has(typeUrl) && (sub.size === 0 || sub.has('*'));
  for (const [name, r] of all) {
    if (!wildcard && !sub.has(name)) continue;
    if (known.get(name) === r.version) continue;
    resources.push({name, version: r.version, resource: r.any});
    known.set(name, r.version);
  }
  for (const name of [...known.keys()]) {
    if (!all.has(name) || (!wildcard && !sub.has(name))) {
      removed.push(name);
      known.delete(name);
    }
  }
  s.known.set(typeUrl, known);
  if (!initial && resources.length === 0 && removed.length === 0) return;
  const n = String(++nonce);
  s.call.write({system_version_info: state.version, type_url: typeUrl, nonce: n, resources,
    removed_resources: removed});
  logLine({event: 'response', mode: 'delta', type_url: typeUrl, nonce: n,
    names: resources.map((r) => r.name), removed});
}

function errorDetail(e) {
  return e ? {code: e.code || 0, message: e.message || ''} : undefined;
}

function sotw(call) {
  const s = {call, subs: new Map(), sent: new Map()};
  streams.add(s);
  call.on('data', (req) => {
    logLine({event: 'request', mode: 'sotw', type_url: req.type_url, version_info: req.version_info || '',
      response_nonce: req.response_nonce || '', resource_names: req.resource_names || [],
      error_detail: errorDetail(req.error_detail), node: req.node ? {id: req.node.id, cluster: req.node.cluster} : null});
    // A request answering an older response than our last of its type is stale (the client
    // has not read the newer one yet and will answer it): ignored, as the xDS protocol says,
    // rather than answered with the whole type again.
    const last = s.sent.get(req.type_url);
    if (req.response_nonce && last !== undefined && req.response_nonce !== last) return;
    const names = new Set(req.resource_names || []);
    const prev = s.subs.get(req.type_url);
    const changed = !prev || prev.size !== names.size || [...names].some((n) => !prev.has(n));
    s.subs.set(req.type_url, names);
    // A request that answers our last response with the same subscription is an ACK or NACK.
    if (req.response_nonce && req.response_nonce === s.sent.get(req.type_url) && !changed) return;
    sotwPush(s, req.type_url);
  });
  call.on('end', () => { streams.delete(s); call.end(); });
  call.on('error', () => streams.delete(s));
}

function delta(call) {
  const s = {call, subs: new Map(), known: new Map(), delta: true, held: new Set()};
  streams.add(s);
  call.on('data', (req) => {
    logLine({event: 'request', mode: 'delta', type_url: req.type_url,
      response_nonce: req.response_nonce || '', subscribe: req.resource_names_subscribe || [],
      unsubscribe: req.resource_names_unsubscribe || [],
      initial_resource_versions: req.initial_resource_versions || {},
      error_detail: errorDetail(req.error_detail), node: req.node ? {id: req.node.id} : null});
    let sub = s.subs.get(req.type_url);
    const first = !sub;
    if (!sub) {
      sub = new Set();
      s.subs.set(req.type_url, sub);
      s.known.set(req.type_url, new Map(Object.entries(req.initial_resource_versions || {})));
    }
    for (const n of req.resource_names_subscribe || []) sub.add(n);
    for (const n of req.resource_names_unsubscribe || []) sub.delete(n);
    const changed = first || (req.resource_names_subscribe || []).length || (req.resource_names_unsubscribe || []).length;
    if (changed) deltaPush(s, req.type_url, first || s.held.has(req.type_url));
    if (state.hold.has(req.type_url)) s.held.add(req.type_url);
  });
  call.on('end', () => { streams.delete(s); call.end(); });
  call.on('error', () => streams.delete(s));
}

// pushTypes(types): every stream gets the types of the Set (null: all) it subscribed again
// (types.only: type URL -> the names a state-of-the-world push is limited to).
function pushTypes(types) {
  for (const s of streams) {
    for (const t of s.subs.keys()) {
      if (types && !types.has(t)) continue;
      if (!s.delta) { sotwPush(s, t, types && types.only ? types.only.get(t) : undefined); continue; }
      const released = s.held.has(t) && !state.hold.has(t);
      if (released) s.held.delete(t);
      deltaPush(s, t, released);
    }
  }
}

load();
let last = fs.statSync(args.resources).mtimeMs;
setInterval(() => {
  let m;
  try { m = fs.statSync(args.resources).mtimeMs; } catch (e) { return; }
  if (m === last) return;
  last = m;
  try { load(); } catch (e) { console.error('control plane: bad resources file: ' + e.message); return; }
  logLine({event: 'push', version: state.version});
  pushTypes(null);
}, 50);

if (args.stdin) {
  require('readline').createInterface({input: process.stdin}).on('line', (line) => {
    if (!line.trim()) return;
    let types;
    try { types = patch(JSON.parse(line)); } catch (e) { console.error('control plane: bad patch: ' + e.message); return; }
    logLine({event: 'patch', version: state.version, types: [...types]});
    pushTypes(types);
  });
}

// --garbage: the same methods with raw bytes in and out; every request gets bytes that do not
// decode as a response (a length-delimited field 1 claiming more bytes than follow).
function garbage(call) {
  call.on('data', () => {
    logLine({event: 'request', mode: 'garbage'});
    call.write(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
  });
  call.on('end', () => call.end());
  call.on('error', () => {});
}
const raw = (name) => ({
  path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/' + name,
  requestStream: true, responseStream: true,
  requestSerialize: (b) => b, requestDeserialize: (b) => b,
  responseSerialize: (b) => b, responseDeserialize: (b) => b,
});

const server = new grpc.Server();
if (args.garbage) {
  server.addService({StreamAggregatedResources: raw('StreamAggregatedResources'),
    DeltaAggregatedResources: raw('DeltaAggregatedResources')},
  {StreamAggregatedResources: garbage, DeltaAggregatedResources: garbage});
} else {
  server.addService(ads.service, {StreamAggregatedResources: sotw, DeltaAggregatedResources: delta});
}
// --tls-cert FILE --tls-key FILE --tls-ca FILE: TLS (ALPN h2), the client's certificate required
// and verified against the CA file.
const creds = !args['tls-cert'] ? grpc.ServerCredentials.createInsecure()
  : grpc.ServerCredentials.createSsl(fs.readFileSync(args['tls-ca']), [{
    private_key: fs.readFileSync(args['tls-key']), cert_chain: fs.readFileSync(args['tls-cert'])}], true);
server.bindAsync('127.0.0.1:' + (args.port || 0), creds, (err, port) => {
  if (err) { console.error(err.message); process.exit(1); }
  console.log('listening ' + port);
});
