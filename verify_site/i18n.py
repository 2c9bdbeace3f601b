"""The verify site's words, French by default with an English switch.

The language comes from `?lang=`, then a `lang` cookie, then French. Titles of
domains and competences stay in French: they are the framework's official names.
"""

from __future__ import annotations

from flask import g, request

LANGUAGES = ("fr", "en")

MESSAGES: dict[str, dict[str, str]] = {
    "fr": {
        "site_title": "Vérifier un certificat de compétences numériques",
        "site_short": "Vérification de certificat",
        "skip": "Aller au contenu",
        "switch": "English",
        "intro": "Saisissez le code de vérification imprimé sur le certificat, ou scannez son QR code.",
        "code_label": "Code de vérification",
        "code_hint": "Par exemple P-7QD8XVGF. Les minuscules, espaces et le préfixe P- sont facultatifs.",
        "verify": "Vérifier",
        "or_scan": "Vous avez le certificat ou son attestation ? Scannez ou déposez son QR code.",
        "scan_link": "Scanner un QR code",
        "bad_code": "Ce texte ne peut pas être un code de vérification : 8 caractères après P-, sans voyelles ni 0, 1, 5.",
        "certificate": "Certificat de compétences numériques",
        "holder": "Titulaire",
        "born": "né(e) le",
        "erased": "Données personnelles effacées à la demande de la personne",
        "centre": "Centre de certification",
        "passed_on": "Date de passage",
        "issued_on": "Délivré le",
        "valid_until": "Valable jusqu'au",
        "status": "Statut :",
        "status_valid": "Valide",
        "status_expired": "Expiré depuis le {since}",
        "status_cancelled": "Annulé le {since}",
        "reason": "Motif :",
        "levels": "Compétences certifiées",
        "level": "Niveau",
        "out_of": "sur {max}",
        "not_certified": "non certifiée",
        "pix_score": "Score",
        "pix": "pix",
        "history": "Historique",
        "event_issued": "délivré",
        "event_cancelled": "annulé",
        "event_rescored": "score révisé",
        "proof": "Preuve cryptographique",
        "proof_intro": "Ce certificat est l'événement n° {seq} d'un registre signé et chaîné. Ce serveur vient de recalculer son empreinte et de vérifier sa signature.",
        "seq": "Position dans le registre",
        "hash": "Empreinte (SHA-256)",
        "kid": "Clé de signature",
        "signature": "Signature Ed25519",
        "chain": "Lien avec l'événement précédent",
        "ok": "vérifié",
        "ko": "ÉCHEC",
        "latest_seq": "Dernier événement de ce certificat",
        "jwks": "Clés publiques",
        "integrity_title": "Alerte d'intégrité : ce certificat ne peut pas être confirmé",
        "integrity_lead": "Les données de ce certificat ne concordent pas avec les événements signés du registre. Elles ont pu être modifiées frauduleusement.",
        "integrity_advice": "Ne vous fiez ni à cette page ni au document présenté. L'anomalie a été signalée aux exploitants du registre ; contactez l'organisme de certification.",
        "problem_hash": "Événement n° {seq} : son contenu ne correspond plus à son empreinte ; il a été modifié.",
        "problem_key": "Événement n° {seq} : signé par une clé que ce registre ne reconnaît pas.",
        "problem_signature": "Événement n° {seq} : la signature ne correspond pas à l'événement.",
        "problem_chain": "Événement n° {seq} : le lien avec l'événement précédent est rompu.",
        "problem_missing": "Événement n° {seq} : absent du registre.",
        "problem_history": "Les événements de ce certificat ne forment pas un historique cohérent.",
        "problem_read-model": "Les données enregistrées pour ce certificat diffèrent de ses événements signés ({fields}).",
        "proof_events": "Ce serveur vient de contrôler chaque événement signé de ce certificat :",
        "key_trusted": "Clé reconnue",
        "no_events": "Aucun événement de ce certificat n'a été trouvé dans le registre.",
        "ledger_status": "Le registre indique :",
        "token": "QR code scanné",
        "token_current": "Le QR code est authentique et correspond à l'état actuel du registre.",
        "token_outdated": "Le QR code est authentique, mais le registre dit désormais autre chose : {what}. C'est l'état du registre ci-dessus qui fait foi.",
        "token_invalid": "Ce QR code n'est pas authentique ou a été modifié ({why}). Ne vous fiez pas au document qui le porte.",
        "token_other": "Ce QR code est authentique mais concerne un autre certificat ({code}).",
        "why_malformed": "jeton illisible",
        "why_unknown-key": "clé de signature inconnue de ce registre",
        "why_bad-signature": "signature invalide",
        "why_bad-claims": "contenu du jeton incohérent",
        "what_cancelled": "le certificat a été annulé",
        "what_rescored": "les niveaux ou le score ont été révisés",
        "browser_check": "Vérification dans votre navigateur",
        "browser_pending": "Vérification de la signature du QR code dans votre navigateur…",
        "browser_ok": "Votre navigateur a vérifié lui-même la signature du QR code avec la clé publique {kid}.",
        "browser_ko": "Votre navigateur a rejeté la signature du QR code.",
        "browser_unsupported": "Votre navigateur ne sait pas vérifier les signatures Ed25519 ; la vérification du serveur ci-dessus reste valable.",
        "not_found_title": "Aucun certificat trouvé",
        "not_found": "Aucun certificat ne porte ce code. Vérifiez la saisie : les codes n'utilisent ni voyelles ni les chiffres 0, 1 et 5.",
        "back": "Vérifier un autre code",
        "scan_title": "Scanner le QR code d'un certificat",
        "scan_intro": "Déposez une photo, une capture d'écran ou le PDF de l'attestation. Le QR code est lu sur le serveur, puis vérifié.",
        "file_label": "Image ou PDF (PNG, JPEG, WebP, GIF, PDF ; 5 Mo au plus)",
        "upload": "Lire le QR code",
        "camera": "Utiliser la caméra",
        "camera_stop": "Arrêter la caméra",
        "camera_hint": "Placez le QR code dans le cadre.",
        "no_qr": "Aucun QR code n'a été trouvé dans ce fichier. Essayez une image plus nette, bien éclairée et cadrée.",
        "foreign_qr": "Ce QR code ne provient pas de ce service de vérification : il contient « {text} ».",
        "unreadable": "Ce fichier n'a pas pu être lu comme une image ou un PDF.",
        "too_large": "Ce fichier est trop volumineux (5 Mo au plus).",
        "wrong_type": "Type de fichier non accepté : déposez une image (PNG, JPEG, WebP, GIF) ou un PDF.",
        "no_file": "Choisissez un fichier à déposer.",
        "forged": "Ce QR code porte une signature invalide : le document a été falsifié ou modifié ({why}).",
        "rate_limited": "Trop de demandes en peu de temps. Réessayez dans {seconds} secondes.",
        "error_title": "Une erreur est survenue",
        "footer": "Registre vérifiable par tous : journal exportable, signatures Ed25519, points de contrôle Merkle.",
    },
    "en": {
        "site_title": "Check a digital competence certificate",
        "site_short": "Certificate check",
        "skip": "Skip to content",
        "switch": "Français",
        "intro": "Enter the verification code printed on the certificate, or scan its QR code.",
        "code_label": "Verification code",
        "code_hint": "For example P-7QD8XVGF. Lower case, spaces and the P- prefix are optional.",
        "verify": "Check",
        "or_scan": "Do you have the certificate or its attestation? Scan or upload its QR code.",
        "scan_link": "Scan a QR code",
        "bad_code": "This cannot be a verification code: 8 characters after P-, no vowels, no 0, 1 or 5.",
        "certificate": "Digital competence certificate",
        "holder": "Holder",
        "born": "born on",
        "erased": "Personal data erased at the person's request",
        "centre": "Certification centre",
        "passed_on": "Test taken on",
        "issued_on": "Issued on",
        "valid_until": "Valid until",
        "status": "Status:",
        "status_valid": "Valid",
        "status_expired": "Expired since {since}",
        "status_cancelled": "Cancelled on {since}",
        "reason": "Reason:",
        "levels": "Certified competences",
        "level": "Level",
        "out_of": "out of {max}",
        "not_certified": "not certified",
        "pix_score": "Score",
        "pix": "pix",
        "history": "History",
        "event_issued": "issued",
        "event_cancelled": "cancelled",
        "event_rescored": "rescored",
        "proof": "Cryptographic proof",
        "proof_intro": "This certificate is event no. {seq} of a signed, hash-chained ledger. This server has just recomputed its hash and checked its signature.",
        "seq": "Position in the ledger",
        "hash": "Hash (SHA-256)",
        "kid": "Signing key",
        "signature": "Ed25519 signature",
        "chain": "Link to the previous event",
        "ok": "verified",
        "ko": "FAILED",
        "latest_seq": "Latest event of this certificate",
        "jwks": "Public keys",
        "integrity_title": "Integrity alert: this certificate cannot be confirmed",
        "integrity_lead": "This certificate's data does not agree with the ledger's signed events. It may have been tampered with.",
        "integrity_advice": "Do not rely on this page or on the document shown to you. The ledger's operators have been alerted; contact the certification body.",
        "problem_hash": "Event no. {seq}: its content no longer matches its hash; it was altered.",
        "problem_key": "Event no. {seq}: signed with a key this ledger does not recognise.",
        "problem_signature": "Event no. {seq}: the signature does not match the event.",
        "problem_chain": "Event no. {seq}: the link to the previous event is broken.",
        "problem_missing": "Event no. {seq}: missing from the ledger.",
        "problem_history": "This certificate's events do not form a consistent history.",
        "problem_read-model": "The data stored for this certificate differs from its signed events ({fields}).",
        "proof_events": "This server has just checked each signed event of this certificate:",
        "key_trusted": "Recognised key",
        "no_events": "No event of this certificate was found in the ledger.",
        "ledger_status": "The ledger says:",
        "token": "Scanned QR code",
        "token_current": "The QR code is authentic and matches the ledger's current state.",
        "token_outdated": "The QR code is authentic, but the ledger now says otherwise: {what}. The ledger's state above is authoritative.",
        "token_invalid": "This QR code is not authentic or was altered ({why}). Do not trust the document that carries it.",
        "token_other": "This QR code is authentic but is for another certificate ({code}).",
        "why_malformed": "unreadable token",
        "why_unknown-key": "signing key unknown to this ledger",
        "why_bad-signature": "invalid signature",
        "why_bad-claims": "inconsistent token content",
        "what_cancelled": "the certificate was cancelled",
        "what_rescored": "the levels or score were revised",
        "browser_check": "Check in your browser",
        "browser_pending": "Checking the QR code's signature in your browser…",
        "browser_ok": "Your browser itself verified the QR code's signature with public key {kid}.",
        "browser_ko": "Your browser rejected the QR code's signature.",
        "browser_unsupported": "Your browser cannot verify Ed25519 signatures; the server's check above still stands.",
        "not_found_title": "No certificate found",
        "not_found": "No certificate has this code. Check what you typed: codes use no vowels and no 0, 1 or 5.",
        "back": "Check another code",
        "scan_title": "Scan a certificate's QR code",
        "scan_intro": "Upload a photo, a screenshot or the attestation PDF. The QR code is read on the server, then checked.",
        "file_label": "Image or PDF (PNG, JPEG, WebP, GIF, PDF; 5 MB at most)",
        "upload": "Read the QR code",
        "camera": "Use the camera",
        "camera_stop": "Stop the camera",
        "camera_hint": "Hold the QR code inside the frame.",
        "no_qr": "No QR code was found in this file. Try a sharper, well-lit, well-framed picture.",
        "foreign_qr": "This QR code does not come from this verification service: it holds “{text}”.",
        "unreadable": "This file could not be read as an image or a PDF.",
        "too_large": "This file is too large (5 MB at most).",
        "wrong_type": "File type not accepted: upload an image (PNG, JPEG, WebP, GIF) or a PDF.",
        "no_file": "Choose a file to upload.",
        "forged": "This QR code carries an invalid signature: the document was forged or altered ({why}).",
        "rate_limited": "Too many requests in a short time. Try again in {seconds} seconds.",
        "error_title": "Something went wrong",
        "footer": "A ledger anyone can check: exportable log, Ed25519 signatures, Merkle checkpoints.",
    },
}


def current_language() -> str:
    """`?lang=`, then the `lang` cookie, then French; worked out once per request."""
    lang = g.get("lang")
    if lang is None:
        asked = request.args.get("lang")
        if not asked and "lang=" in request.environ.get("HTTP_COOKIE", ""):
            asked = request.cookies.get("lang")
        asked = asked or "fr"
        lang = g.lang = asked if asked in LANGUAGES else "fr"
    return lang


def translator(lang: str):
    messages = MESSAGES[lang]

    def t(key: str, **values: object) -> str:
        return messages[key].format(**values) if values else messages[key]

    return t


def format_date(iso: str | None, lang: str) -> str:
    """`2026-12-01` as `01/12/2026` (fr) or `1 Dec 2026` (en)."""
    if not iso:
        return ""
    year, month, day = iso[:10].split("-")
    if lang == "fr":
        return f"{day}/{month}/{year}"
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return f"{int(day)} {months[int(month) - 1]} {year}"
