"""The ceilings for bench/verify.py and bench/http_answers.py: the smallest Flask endpoints, same server."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/ping")
def ping():
    return jsonify(ok=True)


@app.post("/answers")
def answers():
    """Parse the JSON body and answer 201, as the ledger's answer endpoint does."""
    body = request.get_json()
    return jsonify(recorded=1, answer_id=body["answer_id"]), 201


@app.route("/api/v1/health")
def health():
    return jsonify(status="ok")
