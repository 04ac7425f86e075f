#!/usr/bin/env node
// s3rver (pinned in package.json) with what the chunkfs tests need from a real S3 and
// s3rver 3.7.1 does not do by itself:
//
//  - SigV4 signatures are verified. s3rver checks only that the access key exists
//    ("Signature version 4 calculation is unimplemeneted"), so a client signing
//    garbage would pass. Here the canonical request is rebuilt the way S3 does it
//    (path and query decoded, then each byte outside A-Z a-z 0-9 - . _ ~ percent-encoded
//    once, '/' kept in the path; signed headers trimmed, inner spaces collapsed), the
//    signing key derived from the secret, and a mismatch answered 403
//    SignatureDoesNotMatch with the canonical request in the error body. The credential
//    scope must name the bucket's region (S3RVER_BUCKET_REGIONS="bucket=region,...", else
//    S3RVER_REGION, default us-east-1; otherwise 400 AuthorizationHeaderMalformed, as S3
//    answers a request signed for another region) and service s3, its date must be that of
//    x-amz-date, and host, x-amz-content-sha256, x-amz-date and every other x-amz-*
//    header present (x-amz-security-token included) must be signed (otherwise 403
//    AccessDenied, S3's "headers present in the request which were not signed").
//    An unknown access key stays s3rver's own 403 InvalidAccessKeyId.
//  - Anonymous requests (no Authorization header, no presigned query) are answered
//    403 AccessDenied except on the buckets named in S3RVER_PUBLIC_BUCKETS (comma
//    separated): s3rver alone serves every bucket to anyone.
//  - ListObjectsV2 continuation tokens work on OpenSSL 3 (see the DES note below), and
//    listings are in key order with every common prefix (see listObjects below).
//  - S3RVER_PHANTOM_KEYS: keys listings show that the file store cannot hold (below).
//  - S3RVER_EXTRA_KEYS="AKID:SECRET,...": more key pairs of s3rver's one account, next
//    to its built-in S3RVER:S3RVER (whose secret equals its key id, so a test could not
//    tell a logged secret from a logged key id).
//  - S3RVER_KEYS_FILE=FILE: temporary key pairs, as a credentials endpoint of a test
//    issues them: a JSON object {"AKID": {"secret": S, "token": T, "expires": UNIX_MS}},
//    read again whenever it changes. A request signed with one of them after "expires"
//    is answered 400 ExpiredToken (as S3 answers an expired session), one whose
//    x-amz-security-token is not T 403 InvalidToken; the log entry has "expired": true.
//  - S3RVER_REQUEST_LOG=FILE: one JSON line per request, appended synchronously before
//    the response body is sent: method, url (as received), bucket, status, error code,
//    auth ("sigv4", "anonymous", "other"), access key, region, signed headers, range,
//    token_sha256 (sha256 hex of x-amz-security-token, never the token itself).
//  - S3RVER_REDIRECTS='{"/BUCKET/KEY": "LOCATION", ...}': a GET or HEAD of one of these
//    paths (as received, before any query) is answered 307 with that Location once its
//    signature has been checked, as a bucket behind a CDN or a presigning front would.
//
// Everything else, the command line included, is s3rver's: run it as
//   node s3rver-strict.js --address 127.0.0.1 --port 0 --directory DIR --configure-bucket B
'use strict';

const crypto = require('crypto');
const fs = require('fs');

// s3rver encrypts ListObjectsV2 continuation tokens with single DES ('des'), which
// OpenSSL 3 offers only in its legacy provider (node then fails the second page of a
// listing with ERR_OSSL_EVP_UNSUPPORTED). Triple DES with three equal keys is the
// same cipher and is in the default provider.
for (const name of ['createCipheriv', 'createDecipheriv']) {
  const original = crypto[name];
  crypto[name] = function (algorithm, key, iv, options) {
    if (String(algorithm).toLowerCase() === 'des' && key && key.length === 8) {
      const k = Buffer.from(key);
      return original.call(crypto, 'des-ede3-cbc', Buffer.concat([k, k, k]), iv, options);
    }
    return original.call(crypto, algorithm, key, iv, options);
  };
}

const authPath = require.resolve('s3rver/lib/middleware/authentication');
const s3rverAuthentication = require(authPath);
const AWSAccount = require('s3rver/lib/models/account');
const S3Error = require('s3rver/lib/models/error');

const REGION = process.env.S3RVER_REGION || 'us-east-1';
const BUCKET_REGIONS = new Map(
  (process.env.S3RVER_BUCKET_REGIONS || '')
    .split(',')
    .filter(Boolean)
    .map(pair => pair.split('=')),
);
const PUBLIC_BUCKETS = new Set(
  (process.env.S3RVER_PUBLIC_BUCKETS || '').split(',').filter(Boolean),
);
const REQUEST_LOG = process.env.S3RVER_REQUEST_LOG || '';
const KEYS_FILE = process.env.S3RVER_KEYS_FILE || '';
let keysFileStamp = '';
let temporaryKeys = {};
const REDIRECTS = JSON.parse(process.env.S3RVER_REDIRECTS || '{}');

for (const pair of (process.env.S3RVER_EXTRA_KEYS || '').split(',').filter(Boolean)) {
  const colon = pair.indexOf(':');
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(pair.slice(0, colon), pair.slice(colon + 1));
}

// The temporary keys of KEYS_FILE, registered with s3rver's account when first seen.
function loadTemporaryKeys() {
  if (!KEYS_FILE || !fs.existsSync(KEYS_FILE)) return;
  const st = fs.statSync(KEYS_FILE);
  const stamp = st.mtimeMs + ':' + st.size;
  if (stamp === keysFileStamp) return;
  temporaryKeys = JSON.parse(fs.readFileSync(KEYS_FILE, 'utf8'));
  keysFileStamp = stamp;
  for (const [id, k] of Object.entries(temporaryKeys)) {
    if (!AWSAccount.registry.get(id)) AWSAccount.DUMMY_ACCOUNT.createKeyPair(id, k.secret);
  }
}

function checkTemporaryKey(ctx, entry, accessKeyId) {
  loadTemporaryKeys();
  const k = temporaryKeys[accessKeyId];
  if (!k) return;
  if (Date.now() >= k.expires) {
    entry.expired = true;
    throw new S3Error('ExpiredToken', 'The provided token has expired.');
  }
  if (k.token && ctx.get('x-amz-security-token') !== k.token) {
    throw new S3Error('InvalidToken', 'The provided token is malformed or otherwise invalid.');
  }
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

function sha256Hex(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function hmac(key, data) {
  return crypto.createHmac('sha256', key).update(data, 'utf8').digest();
}

// Percent-decode into bytes ('+' stays '+'; a malformed escape stays as it is).
function percentDecode(text) {
  const bytes = [];
  const raw = Buffer.from(text, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === 0x25 && i + 2 < raw.length) {
      const hex = raw.slice(i + 1, i + 3).toString('latin1');
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
        continue;
      }
    }
    bytes.push(c);
  }
  return Buffer.from(bytes);
}

// S3's URI encoding of bytes: unreserved characters as they are, '/' too when keepSlash,
// every other byte as %XX (upper-case hex).
function uriEncode(bytes, keepSlash) {
  let out = '';
  for (const b of bytes) {
    const ch = String.fromCharCode(b);
    if (b < 0x80 && (UNRESERVED.test(ch) || (keepSlash && ch === '/'))) {
      out += ch;
    } else {
      out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
    }
  }
  return out;
}

function canonicalQuery(rawQuery) {
  if (!rawQuery) return '';
  const pairs = rawQuery
    .split('&')
    .filter(part => part.length > 0)
    .map(part => {
      const eq = part.indexOf('=');
      const name = eq < 0 ? part : part.slice(0, eq);
      const value = eq < 0 ? '' : part.slice(eq + 1);
      return [
        uriEncode(percentDecode(name), false),
        uriEncode(percentDecode(value), false),
      ];
    });
  pairs.sort((a, b) =>
    a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0,
  );
  return pairs.map(([n, v]) => n + '=' + v).join('&');
}

function parseAuthorization(header) {
  const m = /^AWS4-HMAC-SHA256\s+(.*)$/.exec(header);
  if (!m) return null;
  const parts = {};
  for (const item of m[1].split(',')) {
    const eq = item.indexOf('=');
    if (eq < 0) continue;
    parts[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
  }
  if (!parts.Credential || !parts.SignedHeaders || !parts.Signature) {
    throw new S3Error(
      'AuthorizationHeaderMalformed',
      'The authorization header is malformed; it requires Credential, SignedHeaders ' +
        'and Signature.',
    );
  }
  const scope = parts.Credential.split('/');
  if (scope.length !== 5 || scope[4] !== 'aws4_request') {
    throw new S3Error(
      'AuthorizationHeaderMalformed',
      'The authorization header is malformed; the Credential is mal-formed; ' +
        'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
    );
  }
  return {
    accessKeyId: scope[0],
    date: scope[1],
    region: scope[2],
    service: scope[3],
    scope: scope.slice(1).join('/'),
    signedHeaders: parts.SignedHeaders.split(';'),
    signature: parts.Signature,
  };
}

// Throws the S3 error real S3 would answer; returns quietly when the signature is right
// or when the request is not SigV4-header-signed (left to s3rver).
function verifySigV4(ctx, entry) {
  const auth = ctx.get('authorization');
  const presigned = 'X-Amz-Algorithm' in ctx.query || 'Signature' in ctx.query;
  if (!auth) {
    entry.auth = presigned ? 'other' : 'anonymous';
    if (!presigned && !PUBLIC_BUCKETS.has(ctx.params.bucket || '')) {
      throw new S3Error('AccessDenied', 'Access Denied');
    }
    return;
  }
  const parsed = parseAuthorization(auth);
  if (!parsed) {
    entry.auth = 'other';
    return;
  }
  entry.auth = 'sigv4';
  entry.key = parsed.accessKeyId;
  entry.region = parsed.region;
  entry.signed = parsed.signedHeaders.join(';');
  checkTemporaryKey(ctx, entry, parsed.accessKeyId);
  const account = AWSAccount.registry.get(parsed.accessKeyId);
  if (!account) return; // s3rver answers 403 InvalidAccessKeyId
  const secret = account.accessKeys.get(parsed.accessKeyId);

  const amzDate = ctx.get('x-amz-date');
  if (!/^\d{8}T\d{6}Z$/.test(amzDate)) {
    throw new S3Error(
      'AccessDenied',
      'AWS authentication requires a valid Date or x-amz-date header',
    );
  }
  if (parsed.date !== amzDate.slice(0, 8)) {
    throw new S3Error(
      'SignatureDoesNotMatch',
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date ` +
        `from HTTP: '${parsed.date}' != '${amzDate.slice(0, 8)}'`,
    );
  }
  const region = BUCKET_REGIONS.get(ctx.params.bucket || '') || REGION;
  if (parsed.region !== region) {
    throw new S3Error(
      'AuthorizationHeaderMalformed',
      `The authorization header is malformed; the region '${parsed.region}' is wrong; ` +
        `expecting '${region}'`,
      { Region: region },
    );
  }
  if (parsed.service !== 's3') {
    throw new S3Error(
      'AuthorizationHeaderMalformed',
      `The authorization header is malformed; incorrect service "${parsed.service}". ` +
        'This endpoint belongs to "s3".',
    );
  }
  const signedSet = new Set(parsed.signedHeaders);
  const mustSign = ['host', 'x-amz-content-sha256', 'x-amz-date'].concat(
    Object.keys(ctx.headers).filter(h => h.startsWith('x-amz-')),
  );
  const unsigned = mustSign.filter(h => !signedSet.has(h));
  if (unsigned.length) {
    throw new S3Error(
      'AccessDenied',
      'There were headers present in the request which were not signed',
      { HeadersNotSigned: Array.from(new Set(unsigned)).join(', ') },
    );
  }
  const canonicalHeaders = parsed.signedHeaders
    .map(name => {
      const value = ctx.headers[name];
      const text = value === undefined ? '' : String(value);
      return name + ':' + text.trim().replace(/\s+/g, ' ') + '\n';
    })
    .join('');
  const rawUrl = ctx.originalUrl;
  const q = rawUrl.indexOf('?');
  const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const rawQuery = q < 0 ? '' : rawUrl.slice(q + 1);
  const canonicalRequest = [
    ctx.method,
    uriEncode(percentDecode(rawPath), true),
    canonicalQuery(rawQuery),
    canonicalHeaders,
    parsed.signedHeaders.join(';'),
    ctx.get('x-amz-content-sha256'),
  ].join('\n');
  const stringToSign = [
    'AWS4-HMAC-SHA256',
    amzDate,
    parsed.scope,
    sha256Hex(canonicalRequest),
  ].join('\n');
  let key = hmac('AWS4' + secret, parsed.date);
  key = hmac(key, parsed.region);
  key = hmac(key, parsed.service);
  key = hmac(key, 'aws4_request');
  const expected = crypto
    .createHmac('sha256', key)
    .update(stringToSign, 'utf8')
    .digest('hex');
  if (expected !== parsed.signature) {
    entry.canonical_request = canonicalRequest;
    throw new S3Error(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. ' +
        'Check your key and signing method.',
      {
        AWSAccessKeyId: parsed.accessKeyId,
        StringToSign: stringToSign,
        SignatureProvided: parsed.signature,
        CanonicalRequest: canonicalRequest,
      },
    );
  }
}

function logEntry(entry) {
  if (!REQUEST_LOG) return;
  fs.appendFileSync(REQUEST_LOG, JSON.stringify(entry) + '\n');
}

function strictAuthentication() {
  const inner = s3rverAuthentication();
  return async function strictAuthentication(ctx, next) {
    const token = ctx.get('x-amz-security-token');
    const entry = {
      method: ctx.method,
      host: ctx.get('host'),
      url: ctx.originalUrl,
      bucket: ctx.params.bucket || '',
      auth: '',
      key: '',
      region: '',
      signed: '',
      range: ctx.get('range'),
      token_sha256: token ? sha256Hex(token) : '',
      status: 0,
      error: '',
    };
    try {
      verifySigV4(ctx, entry);
      const location = REDIRECTS[ctx.originalUrl.split('?')[0]];
      if (location && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
        ctx.status = 307;
        ctx.set('Location', location);
        entry.status = 307;
        return;
      }
      await inner(ctx, next);
      entry.status = ctx.status;
    } catch (err) {
      entry.status = err.status || 500;
      entry.error = err.code || String(err);
      throw err;
    } finally {
      logEntry(entry);
    }
  };
}

// ListObjectsV2/ListObjects as S3 answers them. s3rver 3.7.1's FilesystemStore walks the
// bucket in readdir order (not key order, so continuation pages depend on the file
// system) and never descends below a delimiter, so a common prefix whose own children
// are all "directories" is missing (listing "" of a bucket holding only datasets/a/x
// returns no "datasets/"). Here: every key of the bucket in UTF-8 byte order; keys past
// StartAfter (the continuation token's key); with a delimiter, keys holding it after the
// prefix roll up into common prefixes; at most maxKeys keys per page (common prefixes
// ride along, as s3rver's controller builds the continuation token from the last key).
const FilesystemStore = require('s3rver/lib/stores/filesystem');
const S3Object = require('s3rver/lib/models/object');
const OBJECT_SUFFIX = '._S3rver_object';

function byteCompare(a, b) {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function allKeys(dir, rel, out) {
  for (const name of fs.readdirSync(dir).sort()) {
    const full = dir + '/' + name;
    if (fs.statSync(full).isDirectory()) {
      allKeys(full, rel + name + '/', out);
    } else if (name.endsWith(OBJECT_SUFFIX)) {
      out.push(rel + name.slice(0, -OBJECT_SUFFIX.length));
    }
  }
  return out;
}

// S3RVER_PHANTOM_KEYS='{"BUCKET": ["KEY", ...]}': keys that listings show (7 bytes each)
// but that cannot be stored in s3rver's file store ("a/../b", "a//b", segments over 255
// bytes); a GET of one is 404 NoSuchKey. They let tests list keys S3 allows and file
// systems do not.
const PHANTOM_KEYS = JSON.parse(process.env.S3RVER_PHANTOM_KEYS || '{}');
const PHANTOM_METADATA = {
  etag: JSON.stringify('0'.repeat(32)),
  'last-modified': new Date(0).toUTCString(),
  'content-length': 7,
};

FilesystemStore.prototype.listObjects = async function listObjects(bucket, options) {
  const { delimiter = '', startAfter = '', prefix = '', maxKeys = Infinity } = options;
  const phantoms = new Set(PHANTOM_KEYS[bucket] || []);
  const keys = allKeys(this.getBucketPath(bucket), '', [])
    .map(FilesystemStore.decodeKeyPath)
    .concat([...phantoms])
    .filter(key => key.startsWith(prefix))
    .sort(byteCompare);
  const objects = [];
  const commonPrefixes = [];
  let isTruncated = false;
  for (const key of keys) {
    if (byteCompare(key, startAfter) <= 0) continue;
    const cut = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
    const common = cut === -1 ? null : key.slice(0, cut + delimiter.length);
    if (common && (byteCompare(common, startAfter) <= 0 || commonPrefixes.includes(common))) {
      continue; // rolled up already, on this page or an earlier one
    }
    if (objects.length >= maxKeys) {
      // A full page ends before the next entry, so that no entry lands on two pages.
      isTruncated = true;
      break;
    }
    if (common) {
      commonPrefixes.push(common);
    } else {
      objects.push(key);
    }
  }
  const metadata = await Promise.all(
    objects.map(key =>
      phantoms.has(key) ? PHANTOM_METADATA : this.getMetadata(bucket, key),
    ),
  );
  return {
    objects: objects.map((key, i) => new S3Object(bucket, key, null, metadata[i])),
    commonPrefixes,
    isTruncated,
  };
};

// Put the strict middleware where s3rver's own authentication sits (lib/routes.js
// requires it when s3rver is loaded, below), then run s3rver's command line.
require.cache[authPath].exports = strictAuthentication;
require('s3rver/bin/s3rver.js');
