// A standard verifier (digitalbazaar's @digitalbazaar/vc) checking a credential the
// ledger issued. Reads {credential, did, statusList, contexts, now} as JSON on stdin;
// prints {verified, revoked, error}. The document loader serves only what it is
// given: the bundled contexts, the DID document (and its keys), the status list.
import {gunzipSync} from 'node:zlib';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import * as vc from '@digitalbazaar/vc';

const input = JSON.parse(await new Promise(resolve => {
  let text = '';
  process.stdin.on('data', chunk => { text += chunk; });
  process.stdin.on('end', () => resolve(text));
}));

const documents = new Map(Object.entries(input.contexts));
documents.set(input.did.id, input.did);
for(const method of input.did.verificationMethod) {
  documents.set(method.id, {'@context': input.did['@context'], ...method});
}
if(input.statusList) {
  documents.set(input.statusList.id, input.statusList);
}

async function documentLoader(url) {
  const document = documents.get(url);
  if(document === undefined) {
    throw new Error(`document loader: ${url} is not available offline`);
  }
  return {contextUrl: null, documentUrl: url, document: structuredClone(document)};
}

const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022});

async function checkStatus({credential}) {
  const entry = credential.credentialStatus;
  const {document: list} = await documentLoader(entry.statusListCredential);
  const result = await vc.verifyCredential({credential: list, suite, documentLoader, now: input.now});
  if(!result.verified) {
    return {verified: false, error: new Error('status list credential does not verify')};
  }
  if(list.issuer !== (credential.issuer.id ?? credential.issuer)) {
    return {verified: false, error: new Error('status list issuer differs')};
  }
  const bits = gunzipSync(Buffer.from(list.credentialSubject.encodedList.slice(1), 'base64url'));
  const index = Number(entry.statusListIndex);
  const revoked = (bits[index >> 3] & (0x80 >> (index & 7))) !== 0;
  return {verified: !revoked, revoked};
}

let output;
try {
  const result = await vc.verifyCredential({
    credential: input.credential, suite, documentLoader, checkStatus, now: input.now
  });
  const error = result.error?.errors?.[0] ?? result.error;
  output = {
    verified: result.verified,
    revoked: result.statusResult?.revoked ?? null,
    error: result.verified ? null : String(error?.message ?? error)
  };
} catch(e) {
  output = {verified: false, revoked: null, error: String(e.message ?? e)};
}
process.stdout.write(JSON.stringify(output) + '\n');
