// Middleware for json-server 0.17.4 (`json-server --middlewares jsonserver.js ...`), started by
// runner/demo/jsonserver.py (`provision demo rest`, and the tests through tests/servers/jsonserver.py).
// It turns json-server into something closer to a real REST API for the rest connector's tests and
// the hr-to-rest example, configured by environment variables:
//
//   JSON_SERVER_TOKEN   every request but /_test/* must carry `Authorization: Bearer <token>`,
//                       else 401 {"error": "unauthorised"}.
//   JSON_SERVER_UNIQUE  e.g. `users:userName,email;groups:name`: a write that would give a record the
//                       value of another record's field (strings compared case-insensitively) answers
//                       409 {"error": "duplicate", "field": F, "id": <the other record's id>}.
//
// It also stamps `updatedAt` (ISO-8601 UTC with milliseconds) on every POST/PUT/PATCH of a collection
// record, so a client can read changes with `?updatedAt_gte=...`; answers 409 (not json-server's 500
// with a stack trace) to a POST whose explicit `id` exists; gives a POST without an id the next integer
// id itself, never one given before (json-server takes the largest id + 1, so deleting the newest
// record hands its id to the next one, and a stale reference would name a stranger; no real API reuses
// ids); makes a filter on a field no record has match nothing (json-server drops such a filter and
// answers every record: `?externalId=E1` before any record has an externalId would list strangers);
// and serves, without auth, POST /_test/reset (empty every collection, ids from 1 again; 204) and
// GET /_test/dump (the whole db).
//
// Why writes are serialised: json-server's router waits (connect-pause, a setTimeout of >= 1 ms) between
// this middleware and the insert, so two concurrent POSTs of one userName could both pass a check made
// here. Writes to collections therefore run one at a time: the next one is checked only once the
// previous answer was sent, like a table lock. Reads are never held up.
//
// The db: json-server's cli sets `app.db = router.db` (lib/cli/run.js, createApp) before any request,
// so `req.app.db` is the lowdb instance the router reads and writes.

'use strict';

const TOKEN = process.env.JSON_SERVER_TOKEN || '';
const UNIQUE = parseUnique(process.env.JSON_SERVER_UNIQUE || '');
const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

let lastStamp = 0; // ms of the last updatedAt given: never go back, even if the clock does
let lastIds = {}; // collection -> the largest integer id it ever held since the last reset
let writeQueue = Promise.resolve(); // the write in progress (see "why writes are serialised")

function parseUnique(spec) {
  // `users:userName,email;groups:name` -> {users: ['userName', 'email'], groups: ['name']}
  const out = {};
  for (const part of spec.split(';')) {
    const [collection, fields] = part.split(':');
    if (collection && collection.trim() && fields) {
      out[collection.trim()] = fields.split(',').map((f) => f.trim()).filter(Boolean);
    }
  }
  return out;
}

function stamp() {
  lastStamp = Math.max(Date.now(), lastStamp);
  return new Date(lastStamp).toISOString();
}

function same(a, b) {
  if (typeof a === 'string' && typeof b === 'string') return a.toLowerCase() === b.toLowerCase();
  return a === b;
}

function sameId(a, b) {
  // json-server's own comparison (lodash-id getById): by string, so 5 and "5" are one id
  return a !== undefined && a !== null && b !== undefined && b !== null && String(a) === String(b);
}

function send(res, status, doc) {
  res.status(status);
  if (doc === undefined) return res.end();
  return res.json(doc);
}

function nextId(collection, records) {
  let last = lastIds[collection] || 0;
  for (const r of records) {
    if (Number.isInteger(r.id) && r.id > last) last = r.id;
  }
  lastIds[collection] = last + 1;
  return last + 1;
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// What a write is about: {collection, id} for /<collection> or /<collection>/<id>, when <collection>
// is an array of the db; null otherwise (nested routes, singulars, unknown paths pass untouched).
function target(db, path) {
  const m = /^\/([^/]+)(?:\/([^/]+))?\/?$/.exec(path);
  if (!m) return null;
  const collection = decodeURIComponent(m[1]);
  if (!Array.isArray(db.getState()[collection])) return null;
  return { collection, id: m[2] === undefined ? undefined : decodeURIComponent(m[2]) };
}

// The answer to refuse a write with, or null to let json-server do it.
function refusal(db, method, t, body) {
  const records = db.getState()[t.collection];
  if (method === 'POST' && t.id === undefined) {
    if (isPlainObject(body) && body.id !== undefined && body.id !== null) {
      const existing = records.find((r) => sameId(r.id, body.id));
      if (existing) return { error: 'duplicate', field: 'id', id: existing.id };
    }
  } else if ((method === 'PUT' || method === 'PATCH') && t.id !== undefined) {
    if (!records.some((r) => sameId(r.id, t.id))) return null; // json-server answers 404
  } else {
    return null;
  }
  if (!isPlainObject(body)) return null;
  for (const field of UNIQUE[t.collection] || []) {
    const value = body[field];
    if (value === undefined || value === null) continue;
    const other = records.find((r) => !sameId(r.id, t.id) && same(r[field], value));
    if (other) return { error: 'duplicate', field, id: other.id };
  }
  return null;
}

function hasPath(record, path) {
  if (Object.prototype.hasOwnProperty.call(record, path)) return true;
  let at = record;
  for (const part of path.split('.')) {
    const isObject = at !== null && typeof at === 'object';
    if (!isObject || !Object.prototype.hasOwnProperty.call(at, part)) return false;
    at = at[part];
  }
  return true;
}

// A plain filter (`?field=value`) on a field no record has: json-server would drop it and list every
// record; turned into `field_like=(?!)`, a regular expression nothing matches, so the answer is [] with
// json-server's own paging headers.
function matchNothingOnAbsentFields(req, records) {
  for (const key of Object.keys(req.query)) {
    if (key.startsWith('_') || key === 'q' || key === 'callback' || /_(lte|gte|ne|like)$/.test(key)) continue;
    if (!records.some((r) => isPlainObject(r) && hasPath(r, key))) {
      delete req.query[key];
      req.query[`${key}_like`] = '(?!)';
    }
  }
}

function testRoute(req, res) {
  const db = req.app.db;
  if (req.method === 'POST' && req.path === '/_test/reset') {
    const state = db.getState();
    lastIds = {};
    for (const key of Object.keys(state)) {
      // in place: json-server made its routes from these keys at start, keep every one of them
      if (Array.isArray(state[key])) state[key].splice(0, state[key].length);
    }
    return send(res, 204);
  }
  if (req.method === 'GET' && req.path === '/_test/dump') return send(res, 200, db.getState());
  return send(res, 404, { error: 'no such test route' });
}

function write(req, res, next, t) {
  const db = req.app.db;
  const body = req.body;
  const refused = refusal(db, req.method, t, body);
  if (refused) return send(res, 409, refused);
  if (req.method !== 'DELETE' && isPlainObject(body)) {
    body.updatedAt = stamp();
    if (req.method === 'POST' && (body.id === undefined || body.id === null)) {
      body.id = nextId(t.collection, db.getState()[t.collection]);
    }
  }
  return next();
}

module.exports = function middleware(req, res, next) {
  if (req.path.startsWith('/_test/')) return testRoute(req, res);
  if (TOKEN && req.get('Authorization') !== `Bearer ${TOKEN}`) {
    res.set('WWW-Authenticate', 'Bearer');
    return send(res, 401, { error: 'unauthorised' });
  }
  const t = target(req.app.db, req.path);
  if (!WRITES.has(req.method)) {
    if (req.method === 'GET' && t && t.id === undefined) {
      matchNothingOnAbsentFields(req, req.app.db.getState()[t.collection]);
    }
    return next();
  }
  if (!t) return next();
  const mine = writeQueue.then(
    () =>
      new Promise((done) => {
        res.once('finish', done);
        res.once('close', done);
        // A client killed while its write waited here (a kill -9 test) closed the connection before
        // these listeners existed: 'close' will not come again. The write is still applied, as a
        // real server applies a request whose client went away, and the next one waits a moment
        // for it. Whatever happens, a write holds the queue 5 s at most.
        if (res.destroyed || req.socket.destroyed) setTimeout(done, 50);
        setTimeout(done, 5000);
        try {
          write(req, res, next, t);
        } catch (err) {
          done();
          next(err);
        }
      }),
  );
  writeQueue = mine.catch(() => undefined);
  return undefined;
};
