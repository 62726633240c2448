// Drives Google's official Node.js Cloud Storage client against the ModelRegistry's GCS API, unmodified but for
// its endpoint. Exits non-zero with the failing step on stderr. Run by GoblinAspire.ModelRegistry.Tests.
import { Storage } from '@google-cloud/storage';
import { createHash, randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';

const endpoint = process.env.GCS_ENDPOINT;
const storage = new Storage({ apiEndpoint: endpoint, projectId: 'goblin', useAuthWithCustomEndpoint: false });
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

// A V4 signed URL is minted by the registry (it holds the key); any HTTP client can use it.
const minted = await fetch(`${endpoint}/api/v1/storage/signed-urls`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ bucket: 'official-client', object: 'dir/small.txt' }) });
const { url } = await minted.json();
const signed = Buffer.from(await (await fetch(url)).arrayBuffer());
assert.deepEqual(signed, small);

console.log('official client: all steps passed');
