"""`/problems/<code>`: the page every problem `type` URL points to.

A client that meets an unfamiliar error follows its `type` and learns what it
means and how to fix it, in English or French (Accept-Language, or `?lang=`),
as HTML for people or JSON for programs. The registry below is the single
list of codes the service emits; a test checks the source emits no other.
"""

from __future__ import annotations

from typing import NamedTuple

from flask import Blueprint, Response, jsonify, render_template_string, request

from ledger.api.problems import ApiProblem

bp = Blueprint("problem_types", __name__)
LANGUAGES = ("en", "fr")


class ProblemType(NamedTuple):
    """One problem code: its usual status and, per language, what it means and what to do."""

    status: int
    en: tuple[str, str]
    fr: tuple[str, str]


def _p(status: int, en: str, en_fix: str, fr: str, fr_fix: str) -> ProblemType:
    return ProblemType(status, (en, en_fix), (fr, fr_fix))


RETRY_EN, RETRY_FR = (
    "Wait as Retry-After says, then retry.",
    "Attendez le délai Retry-After puis réessayez.",
)
SCHEMA_EN = "Correct the fields named in `errors` as the OpenAPI schema describes."
SCHEMA_FR = "Corrigez les champs cités dans `errors` comme le décrit le schéma OpenAPI."

PROBLEM_TYPES: dict[str, ProblemType] = {
    # --- requests and transport
    "malformed-request": _p(400, "The request is not valid HTTP or is inconsistent.", "Send a well-formed HTTP/1.1 request.", "La requête n'est pas du HTTP valide ou est incohérente.", "Envoyez une requête HTTP/1.1 bien formée."),
    "malformed-json": _p(400, "The body is not one JSON object (not UTF-8, a repeated key, NaN, too deep or unreadable).", "Send a single UTF-8 JSON object with unique keys and finite numbers.", "Le corps n'est pas un objet JSON unique (pas en UTF-8, clé répétée, NaN, trop imbriqué ou illisible).", "Envoyez un seul objet JSON UTF-8 aux clés uniques et aux nombres finis."),
    "bad-range": _p(400, "The requested range of the log is not valid.", "Ask for a range inside the log, start before end.", "La plage du journal demandée n'est pas valide.", "Demandez une plage comprise dans le journal, début avant fin."),
    "no-file": _p(400, "No file was uploaded.", "Upload the PDF in the `file` form field.", "Aucun fichier n'a été envoyé.", "Envoyez le PDF dans le champ de formulaire `file`."),
    "not-a-pdf": _p(422, "The uploaded file is not a PDF.", "Upload the attestation PDF as issued.", "Le fichier envoyé n'est pas un PDF.", "Envoyez l'attestation PDF telle qu'elle a été délivrée."),
    "not-a-tile": _p(404, "The path does not name a tile of the transparency log.", "Use tile paths as the tlog-tiles specification describes.", "Le chemin ne désigne pas une tuile du journal de transparence.", "Utilisez les chemins de tuiles décrits par la spécification tlog-tiles."),
    "beyond-tree": _p(404, "The log is not yet that large.", "Ask for entries below the latest checkpoint's size.", "Le journal n'est pas encore aussi grand.", "Demandez des entrées sous la taille du dernier point de contrôle."),
    "content-too-large": _p(413, "The body is larger than the service accepts.", "Send a smaller body, or split a batch.", "Le corps dépasse la taille acceptée.", "Envoyez un corps plus petit ou découpez le lot."),
    "uri-too-long": _p(414, "The request line is too long.", "Shorten the URL and its query.", "La ligne de requête est trop longue.", "Raccourcissez l'URL et ses paramètres."),
    "unsupported-media-type": _p(415, "The body's media type is not accepted here.", "Send Content-Type: application/json (a PDF upload: multipart/form-data).", "Le type de média du corps n'est pas accepté ici.", "Envoyez Content-Type: application/json (un PDF : multipart/form-data)."),
    "expectation-failed": _p(417, "The Expect header cannot be met.", "Drop the Expect header.", "L'en-tête Expect ne peut être satisfait.", "Retirez l'en-tête Expect."),
    "header-fields-too-large": _p(431, "Too many or too large header fields.", "Send at most 100 header fields of at most 8 KiB each.", "En-têtes trop nombreux ou trop grands.", "Envoyez au plus 100 en-têtes de 8 Kio au plus chacun."),
    "not-implemented": _p(501, "The transfer coding is not supported.", "Send the body plainly or chunked.", "Le codage de transfert n'est pas pris en charge.", "Envoyez le corps tel quel ou en chunked."),
    "validation-failed": _p(422, "Some fields do not match the schema; `errors` names each field and the expected format.", SCHEMA_EN, "Des champs ne respectent pas le schéma ; `errors` nomme chaque champ et le format attendu.", SCHEMA_FR),
    "invalid-input": _p(422, "A value cannot enter a signed event (bad type, size or characters).", "Send the field in the documented format.", "Une valeur ne peut pas entrer dans un événement signé (type, taille ou caractères).", "Envoyez le champ au format documenté."),
    "batch-too-large": _p(422, "The batch holds more items than allowed.", "Split it into batches of at most 1,000.", "Le lot contient plus d'éléments que permis.", "Découpez-le en lots de 1 000 au plus."),
    "method-not-allowed": _p(405, "This path does not accept that method.", "Use a method listed in the Allow header.", "Ce chemin n'accepte pas cette méthode.", "Utilisez une méthode listée dans l'en-tête Allow."),
    "http-error": _p(429, "An HTTP-level refusal, such as too many requests.", RETRY_EN, "Un refus au niveau HTTP, par exemple trop de requêtes.", RETRY_FR),
    # --- authentication and idempotency
    "missing-token": _p(401, "The call needs a bearer token.", "Send Authorization: Bearer <token> (`ledger tokens create`).", "L'appel demande un jeton.", "Envoyez Authorization: Bearer <jeton> (`ledger tokens create`)."),
    "invalid-token": _p(401, "The token is unknown, revoked or malformed.", "Ask the operator for a valid token.", "Le jeton est inconnu, révoqué ou mal formé.", "Demandez un jeton valide à l'opérateur."),
    "insufficient-scope": _p(403, "The token lacks the scope this operation needs (see x-required-scopes).", "Use a token holding that scope.", "Le jeton n'a pas la portée requise (voir x-required-scopes).", "Utilisez un jeton qui a cette portée."),
    "forbidden": _p(403, "The request is forbidden.", "Check the URL and your rights.", "La requête est interdite.", "Vérifiez l'URL et vos droits."),
    "not-your-certificate": _p(403, "The token's holder is not this certificate's holder.", "Use the holder's own token.", "Le titulaire du jeton n'est pas celui du certificat.", "Utilisez le jeton du titulaire."),
    "invalid-idempotency-key": _p(400, "The Idempotency-Key header is malformed.", "Send 1 to 255 printable ASCII characters, e.g. a UUID.", "L'en-tête Idempotency-Key est mal formé.", "Envoyez de 1 à 255 caractères ASCII imprimables, par ex. un UUID."),
    "idempotency-key-reused": _p(422, "This Idempotency-Key was used with another body.", "Use a new key for a new request.", "Cette Idempotency-Key a servi avec un autre corps.", "Utilisez une nouvelle clé pour une nouvelle requête."),
    "idempotency-in-progress": _p(409, "The first request with this key is still running.", RETRY_EN, "La première requête avec cette clé est en cours.", RETRY_FR),
    "idempotency-retry": _p(409, "The first request with this key did not finish.", "Retry with the same key.", "La première requête avec cette clé n'a pas abouti.", "Réessayez avec la même clé."),
    # --- the domain
    "domain-rule": _p(422, "A rule of the certification domain refused the command.", "Read `detail` for the rule.", "Une règle du domaine a refusé la commande.", "Lisez `detail` pour la règle."),
    "not-found": _p(404, "Nothing has this id (or it is not visible to your token).", "Check the id and the token's scope.", "Rien n'a cet identifiant (ou votre jeton ne le voit pas).", "Vérifiez l'identifiant et la portée du jeton."),
    "conflict": _p(409, "The command contradicts what is already recorded.", "Read the current state and decide again.", "La commande contredit ce qui est déjà enregistré.", "Relisez l'état courant puis décidez."),
    "invalid-identity": _p(422, "The candidate's identity is incomplete or impossible.", "Send names, a real past birth date (YYYY-MM-DD) and a birth place.", "L'identité du candidat est incomplète ou impossible.", "Envoyez nom, prénom, une date de naissance passée réelle (AAAA-MM-JJ) et un lieu."),
    "invalid-answer": _p(422, "The answer is inconsistent (result, time, skill or competence).", "Send a result from the enum and the challenge's own skill and competence.", "La réponse est incohérente (résultat, durée, acquis ou compétence).", "Envoyez un résultat de l'énumération et l'acquis et la compétence de l'épreuve."),
    "unknown-reference": _p(422, "The challenge, skill or competence is not in the referential.", "Use ids from the published referential.", "L'épreuve, l'acquis ou la compétence n'est pas dans le référentiel.", "Utilisez les identifiants du référentiel publié."),
    "unknown-erasure-reason": _p(422, "The erasure reason is not one of the GDPR grounds listed.", "Send one of the codes of the enum.", "Le motif d'effacement n'est pas un des motifs RGPD listés.", "Envoyez un des codes de l'énumération."),
    "invalid-centre": _p(422, "The centre's details are invalid.", "Send a name, a kind from the enum and a city.", "Les informations du centre sont invalides.", "Envoyez un nom, un type de l'énumération et une ville."),
    "wrong-session-state": _p(409, "The session is not in a state that allows this step.", "Read the session's state; steps go created, finalized, in_process, processed.", "La session n'est pas dans un état qui permet cette étape.", "Lisez l'état de la session : created, finalized, in_process, processed."),
    "wrong-session-day": _p(409, "A course can only start on the session's day.", "Start it on the scheduled date.", "Un parcours ne peut démarrer que le jour de la session.", "Démarrez-le à la date prévue."),
    "invalid-examiner-report": _p(422, "The examiner report names unknown candidates or is inconsistent.", "Report only enrolled candidates, with reasons from the enums.", "Le procès-verbal cite des candidats inconnus ou est incohérent.", "Ne citez que des candidats inscrits, avec des motifs des énumérations."),
    "not-enrolled": _p(409, "The candidate is not enrolled in this session.", "Enrol the candidate first.", "Le candidat n'est pas inscrit à cette session.", "Inscrivez d'abord le candidat."),
    "ineligible-candidate": _p(409, "The candidate is not eligible (too few competences at level 1).", "Let the candidate position further first.", "Le candidat n'est pas éligible (trop peu de compétences au niveau 1).", "Laissez d'abord le candidat se positionner davantage."),
    "invalid-accommodation": _p(422, "The accommodation is out of range.", "extra_time_percent: 0 to 100; accessibility: true or false.", "L'aménagement est hors limites.", "extra_time_percent : 0 à 100 ; accessibility : true ou false."),
    "outside-certification-window": _p(409, "The date is outside the audience's certification window.", "Schedule inside the window the referential gives for this audience.", "La date est hors de la fenêtre de certification du public.", "Planifiez dans la fenêtre prévue pour ce public."),
    "course-rule": _p(409, "The course does not allow this (e.g. already ended).", "Read the course's state.", "Le parcours ne le permet pas (par ex. déjà terminé).", "Lisez l'état du parcours."),
    "late-answer": _p(409, "The answer arrived after the course's deadline.", "Answers must arrive before the deadline (accommodations extend it).", "La réponse est arrivée après l'échéance du parcours.", "Les réponses doivent arriver avant l'échéance (les aménagements la repoussent)."),
    "course-ended": _p(409, "The course has ended; it takes no more answers.", "Nothing to do: its result stands.", "Le parcours est terminé ; il n'accepte plus de réponse.", "Rien à faire : son résultat est acquis."),
    "unassigned-challenge": _p(409, "The challenge was not assigned to this course.", "Answer only the course's own challenges.", "L'épreuve n'a pas été attribuée à ce parcours.", "Ne répondez qu'aux épreuves du parcours."),
    "invalid-rescoring": _p(422, "The rescoring is not allowed for this certificate.", "Read `detail`; a cancelled certificate is not rescored.", "Ce recalcul n'est pas permis pour ce certificat.", "Lisez `detail` ; un certificat annulé n'est pas recalculé."),
    "webhook-target-refused": _p(422, "The webhook URL may not receive deliveries: it is not https, does not resolve, or resolves to a loopback, private, link-local, multicast, reserved or unspecified address.", "Register an https URL whose host resolves to public addresses only; `detail` names the reason.", "L'URL du webhook ne peut pas recevoir d'envois : elle n'est pas en https, ne se résout pas, ou désigne une adresse de bouclage, privée, lien-local, multicast, réservée ou non spécifiée.", "Enregistrez une URL https dont l'hôte ne désigne que des adresses publiques ; `detail` donne la raison."),
    "webhook-exists": _p(409, "The school already has a webhook to this URL; each event would be sent twice.", "Keep the existing webhook (`detail` names its id), or delete it first.", "L'établissement a déjà un webhook vers cette URL ; chaque événement serait envoyé deux fois.", "Gardez le webhook existant (`detail` donne son identifiant), ou supprimez-le d'abord."),
    "webhook-limit": _p(409, "The school has as many webhooks as allowed (LEDGER_WEBHOOK_MAX_PER_SCHOOL).", "Delete a webhook it no longer uses (GET then DELETE /institutions/<uai>/webhooks/<id>), then register.", "L'établissement a autant de webhooks que permis (LEDGER_WEBHOOK_MAX_PER_SCHOOL).", "Supprimez un webhook inutilisé (GET puis DELETE /institutions/<uai>/webhooks/<id>), puis enregistrez."),
    # --- certificates and verification
    "unknown-certificate": _p(404, "No certificate has this verification code.", "Check the code's letters (the alphabet skips look-alike characters).", "Aucun certificat n'a ce code de vérification.", "Vérifiez les caractères du code (l'alphabet évite les caractères ambigus)."),
    "certificate-cancelled": _p(410, "The certificate was cancelled.", "Nothing to fix: it is no longer valid.", "Le certificat a été annulé.", "Rien à corriger : il n'est plus valable."),
    "holder-erased": _p(410, "The holder's personal data was erased.", "Nothing to fix: the certificate can no longer be shown.", "Les données du titulaire ont été effacées.", "Rien à corriger : le certificat ne peut plus être présenté."),
    "unknown-status-list": _p(404, "No status list has this id.", "Use the statusListCredential URL from the credential.", "Aucune liste de statut n'a cet identifiant.", "Utilisez l'URL statusListCredential du justificatif."),
    "integrity-failure": _p(503, "The stored record does not verify; it is not shown.", "Report it to the operator; an audit names the bad event.", "L'enregistrement ne se vérifie pas ; il n'est pas présenté.", "Signalez-le à l'opérateur ; l'audit nomme l'événement fautif."),
    "tiles-inconsistent": _p(503, "The log's tiles disagree with its events.", "Report it to the operator.", "Les tuiles du journal ne concordent pas avec ses événements.", "Signalez-le à l'opérateur."),
    "checkpoint-unavailable": _p(503, "No signed checkpoint covers this certificate yet.", RETRY_EN, "Aucun point de contrôle signé ne couvre encore ce certificat.", RETRY_FR),
    "attestation-signing-unavailable": _p(503, "The attestation signing key is not available.", "Retry later; the operator must run `ledger keys init`.", "La clé de signature des attestations est indisponible.", "Réessayez plus tard ; l'opérateur doit lancer `ledger keys init`."),
    # --- service
    "busy": _p(503, "The service is busy checking other files.", RETRY_EN, "Le service vérifie déjà d'autres fichiers.", RETRY_FR),
    "not-ready": _p(503, "The service is not ready: `checks` says which check failed and why (database, keys, read models too far behind the log, checkpoint too old, integrity alarm).", RETRY_EN, "Le service n'est pas prêt : `checks` indique la vérification en échec et pourquoi (base, clés, modèles de lecture trop en retard sur le journal, point de contrôle trop ancien, alerte d'intégrité).", RETRY_FR),
    "projections-behind": _p(503, "The read models have not caught up with the log yet (the projection runner is behind or stopped), so the answer would be stale.", RETRY_EN, "Les modèles de lecture n'ont pas encore rattrapé le journal (le projecteur est en retard ou arrêté) : la réponse serait périmée.", RETRY_FR),
    "service-unavailable": _p(503, "The database cannot be reached right now.", RETRY_EN, "La base de données est injoignable pour l'instant.", RETRY_FR),
    "internal-error": _p(500, "An unexpected error; it has been logged.", "Retry; if it persists, report the time to the operator.", "Erreur inattendue ; elle a été journalisée.", "Réessayez ; si elle persiste, signalez l'heure à l'opérateur."),
}  # fmt: skip

PAGE = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><title>{{ code }}</title></head>
<body><main><h1><code>{{ code }}</code> ({{ status }})</h1>
<h2>{{ labels[0] }}</h2><p>{{ meaning }}</p><h2>{{ labels[1] }}</h2><p>{{ fix }}</p>
</main></body></html>"""
LABELS = {"en": ("What it means", "How to fix it"), "fr": ("Signification", "Que faire")}


def _language() -> str:
    """`?lang=` first, then the browser's preference; English by default."""
    asked = request.args.get("lang", "")
    return asked if asked in LANGUAGES else request.accept_languages.best_match(LANGUAGES) or "en"


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return request.args.get("format") == "json" or best == "application/json"


def explain(code: str, lang: str) -> dict[str, object]:
    """The explanation of `code` as JSON (404 problem for an unknown code)."""
    entry = PROBLEM_TYPES.get(code)
    if entry is None:
        raise ApiProblem(404, "not-found", f"no problem type is called {code!r}")
    meaning, fix = getattr(entry, lang)
    return {"type": f"/problems/{code}", "status": entry.status, "lang": lang,
            "meaning": meaning, "fix": fix}  # fmt: skip


@bp.route("/problems/<code>")
def problem_type(code: str) -> Response:
    """What a problem type means and how to fix it, for people (HTML) or programs (JSON)."""
    body = explain(code, _language())
    if _wants_json():
        response = jsonify(body)
    else:
        page = render_template_string(PAGE, code=code, labels=LABELS[body["lang"]], **body)
        response = Response(page, mimetype="text/html")
    response.headers["Content-Language"] = str(body["lang"])
    response.vary.update(("Accept", "Accept-Language"))
    return response
