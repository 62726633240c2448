// Drives Google's official Node.js Cloud Storage client against the ModelRegistry's GCS API, unmodified but for
// its endpoint. Exits non-zero with the failing step on stderr. Run by GoblinAspire.ModelRegistry.Tests.
import { Storage } from '@google-cloud/storage';
import { OAuth2Client } from 'google-auth-library';
import { createHash, randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const endpoint = process.env.GCS_ENDPOINT;
// With GCS_TOKEN the client authenticates as it does against Google (a bearer access token from its auth client);
// without, it sends no credential, for a registry whose operator turned the token off.
const token = process.env.GCS_TOKEN;
const authClient = token ? new OAuth2Client() : undefined;
authClient?.setCredentials({ access_token: token });
const storage = new Storage(token
  ? { apiEndpoint: endpoint, projectId: 'goblin', authClient, useAuthWithCustomEndpoint: true }
  : { apiEndpoint: endpoint, projectId: 'goblin', useAuthWithCustomEndpoint: false });
// The client's default resumable path (save, upload, createWriteStream) drops useAuthWithCustomEndpoint when it opens
// the session (7.22.0's File#startResumableUpload_), so against any custom endpoint that session request goes out
// without the token. A request interceptor, the client's documented hook, adds it; the session URI then carries itself.
if (token) {
  storage.interceptors.push({ request: (options) => ({ ...options, headers: { ...options.headers, Authorization: `Bearer ${token}` } }) });
}
const md5 = (bytes) => createHash('md5').update(bytes).digest('base64');

const [bucket] = await storage.createBucket('official-client');
assert.equal(bucket.name, 'official-client');

// Small objects go as multipart uploads; large ones as resumable uploads in 256 KiB multiples.
const small = Buffer.from('hello from the official client');
await bucket.file('dir/small.txt').save(small, { resumable: false, contentType: 'text/plain', metadata: { metadata: { stage: 'dev' } } });
const large = randomBytes(3 * 1024 * 1024 + 123);
await bucket.file('dir/large.bin').save(large, { resumable: true, chunkSize: 1024 * 1024, validation: 'crc32c' });

const [meta] = await bucket.file('dir/small.txt').getMetadata();
assert.equal(meta.size, String(small.length));
assert.equal(meta.md5Hash, md5(small));
assert.equal(meta.metadata.stage, 'dev');

// Downloads are validated by the client against crc32c and md5.
const [downloadedSmall] = await bucket.file('dir/small.txt').download({ validation: 'crc32c' });
assert.deepEqual(downloadedSmall, small);
const [downloadedLarge] = await bucket.file('dir/large.bin').download({ validation: 'md5' });
assert.ok(downloadedLarge.equals(large));
const [part] = await bucket.file('dir/large.bin').download({ start: 1000, end: 1999 });
assert.ok(part.equals(large.subarray(1000, 2000)));

const [, , listing] = await bucket.getFiles({ prefix: 'dir/', delimiter: '/', autoPaginate: false });
assert.deepEqual((listing.items ?? []).map((f) => f.name).sort(), ['dir/large.bin', 'dir/small.txt']);
const [all] = await bucket.getFiles();
assert.equal(all.length, 2);
const [firstPage, nextQuery] = await bucket.getFiles({ maxResults: 1, autoPaginate: false });
assert.equal(firstPage.length, 1);
const [secondPage] = await bucket.getFiles({ ...nextQuery, autoPaginate: false });
assert.deepEqual([...firstPage, ...secondPage].map((f) => f.name), ['dir/large.bin', 'dir/small.txt']);

const [updated] = await bucket.file('dir/small.txt').setMetadata({ metadata: { stage: 'prod' } });
assert.equal(updated.metageneration, '2');

await bucket.file('dir/large.bin').copy(bucket.file('copies/large.bin'));
const [copied] = await bucket.file('copies/large.bin').download();
assert.ok(copied.equals(large));

await assert.rejects(bucket.file('dir/small.txt').save(Buffer.from('x'), { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } }), (e) => e.code === 412);
await bucket.file('copies/large.bin').delete();
const [exists] = await bucket.file('copies/large.bin').exists();
assert.equal(exists, false);
await assert.rejects(bucket.file('missing').download(), (e) => e.code === 404);

// The client's defaults on every call: uploads are resumable, sent as one PUT of unknown length
// (Content-Range: bytes 0-*/*), and md5/crc32c are validated both ways.
const saved = randomBytes(2 * 1024 * 1024 + 11);
await bucket.file('defaults/saved.bin').save(saved);
await bucket.file('defaults/empty.bin').save(Buffer.alloc(0));
const folder = await mkdtemp(join(tmpdir(), 'goblin-gcs-client-'));
const uploaded = randomBytes(1024 * 1024 + 5);
await writeFile(join(folder, 'uploaded.bin'), uploaded);
await bucket.upload(join(folder, 'uploaded.bin'));
await bucket.upload(join(folder, 'uploaded.bin'), { destination: 'defaults/uploaded.bin' });
await rm(folder, { recursive: true });
const streamed = randomBytes(3 * 1024 * 1024 + 1);
await pipeline(Readable.from([streamed.subarray(0, 1_000_000), streamed.subarray(1_000_000)]), bucket.file('defaults/streamed.bin').createWriteStream());
for (const [name, bytes] of [['defaults/saved.bin', saved], ['defaults/empty.bin', Buffer.alloc(0)], ['uploaded.bin', uploaded], ['defaults/uploaded.bin', uploaded], ['defaults/streamed.bin', streamed]]) {
  const [stored] = await bucket.file(name).getMetadata();
  assert.equal(stored.size, String(bytes.length), name);
  assert.equal(stored.md5Hash, md5(bytes), name);
  const [downloaded] = await bucket.file(name).download();
  assert.ok(downloaded.equals(bytes), name);
  const chunks = [];
  await pipeline(bucket.file(name).createReadStream(), async function* (source) {
    for await (const chunk of source) chunks.push(chunk);
  });
  assert.ok(Buffer.concat(chunks).equals(bytes), name);
}

// Compose (no md5 for a composite, as in GCS; the client validates its crc32c), bucket labels, glob listing.
await bucket.combine(['defaults/saved.bin', 'defaults/uploaded.bin'], 'defaults/combined.bin');
const [combined] = await bucket.file('defaults/combined.bin').download();
assert.ok(combined.equals(Buffer.concat([saved, uploaded])));
const [combinedMeta] = await bucket.file('defaults/combined.bin').getMetadata();
assert.equal(combinedMeta.md5Hash, undefined);
assert.equal(combinedMeta.componentCount, 2);
await bucket.setLabels({ stage: 'dev' });
const [bucketMeta] = await bucket.getMetadata();
assert.equal(bucketMeta.labels.stage, 'dev');
assert.equal(bucketMeta.metageneration, '2');
const [globbed] = await bucket.getFiles({ matchGlob: 'defaults/*.bin' });
assert.deepEqual(globbed.map((f) => f.name), ['defaults/combined.bin', 'defaults/empty.bin', 'defaults/saved.bin', 'defaults/streamed.bin', 'defaults/uploaded.bin']);
const [deep] = await bucket.getFiles({ matchGlob: '**/{small,large}.*' });
assert.deepEqual(deep.map((f) => f.name), ['dir/large.bin', 'dir/small.txt']);

// A V4 signed URL is minted by the registry (it holds the key; minting needs the token); any HTTP client can use it.
const minted = await fetch(`${endpoint}/api/v1/storage/signed-urls`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify({ bucket: 'official-client', object: 'dir/small.txt' }) });
const { url } = await minted.json();
const signed = Buffer.from(await (await fetch(url)).arrayBuffer());
assert.deepEqual(signed, small);

console.log('official client: all steps passed');
