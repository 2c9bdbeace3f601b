"""The ceiling for bench/verify.py: the smallest Flask endpoint, same server settings."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/ping")
def ping():
    return jsonify(ok=True)
