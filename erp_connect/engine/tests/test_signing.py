import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from erp_connect.engine import signing
from erp_connect.engine.signing import WebhookVerificationError

# The example from the Standard Webhooks / Svix documentation
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers_for(secret, body, msg_id="msg_1", timestamp=SPEC_TIMESTAMP):
	return signing.signature_headers(secret, msg_id, body, timestamp)


def test_signature_matches_the_published_example():
	assert signing.sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_verify_accepts_a_fresh_correct_message_and_returns_its_id():
	headers = headers_for(SPEC_SECRET, SPEC_BODY)
	assert signing.verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP + 10) == "msg_1"


def test_header_names_are_case_insensitive():
	headers = {k.upper(): v for k, v in headers_for(SPEC_SECRET, SPEC_BODY).items()}
	assert signing.verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP)


@pytest.mark.parametrize("skew", [-301, 301, 3600])
def test_verify_refuses_timestamps_outside_five_minutes(skew):
	headers = headers_for(SPEC_SECRET, SPEC_BODY)
	with pytest.raises(WebhookVerificationError, match="tolerance"):
		signing.verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP + skew)


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_verify_accepts_timestamps_at_the_edge_of_the_tolerance(skew):
	headers = headers_for(SPEC_SECRET, SPEC_BODY)
	assert signing.verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP + skew)


def test_verify_refuses_a_changed_body_id_or_timestamp():
	headers = headers_for(SPEC_SECRET, SPEC_BODY)
	with pytest.raises(WebhookVerificationError, match="no matching signature"):
		signing.verify(SPEC_SECRET, headers, SPEC_BODY + " ", now=SPEC_TIMESTAMP)
	with pytest.raises(WebhookVerificationError):
		signing.verify(SPEC_SECRET, {**headers, "webhook-id": "msg_2"}, SPEC_BODY, now=SPEC_TIMESTAMP)
	with pytest.raises(WebhookVerificationError):
		moved = {**headers, "webhook-timestamp": str(SPEC_TIMESTAMP + 1)}
		signing.verify(SPEC_SECRET, moved, SPEC_BODY, now=SPEC_TIMESTAMP)


def test_verify_refuses_another_secret():
	other = signing.generate_secret()
	with pytest.raises(WebhookVerificationError):
		signing.verify(other, headers_for(SPEC_SECRET, SPEC_BODY), SPEC_BODY, now=SPEC_TIMESTAMP)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_refuses_missing_headers(missing):
	headers = headers_for(SPEC_SECRET, SPEC_BODY)
	del headers[missing]
	with pytest.raises(WebhookVerificationError, match="missing"):
		signing.verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP)


def test_verify_refuses_a_non_numeric_timestamp_and_unknown_versions():
	headers = headers_for(SPEC_SECRET, SPEC_BODY)
	with pytest.raises(WebhookVerificationError, match="integer"):
		signing.verify(SPEC_SECRET, {**headers, "webhook-timestamp": "soon"}, SPEC_BODY, now=SPEC_TIMESTAMP)
	v2 = headers["webhook-signature"].replace("v1,", "v2,")
	with pytest.raises(WebhookVerificationError):
		signing.verify(SPEC_SECRET, {**headers, "webhook-signature": v2}, SPEC_BODY, now=SPEC_TIMESTAMP)


def test_key_rotation_sender_signs_with_both_receiver_accepts_either():
	old, new = signing.generate_secret(), signing.generate_secret()
	headers = headers_for([old, new], SPEC_BODY)
	assert len(headers["webhook-signature"].split()) == 2
	assert signing.verify(old, headers, SPEC_BODY, now=SPEC_TIMESTAMP)
	assert signing.verify(new, headers, SPEC_BODY, now=SPEC_TIMESTAMP)
	# and a receiver that knows both accepts a message signed with only one
	assert signing.verify([old, new], headers_for(new, SPEC_BODY), SPEC_BODY, now=SPEC_TIMESTAMP)


def test_verify_needs_a_secret():
	with pytest.raises(WebhookVerificationError, match="no signing secret"):
		signing.verify([], headers_for(SPEC_SECRET, SPEC_BODY), SPEC_BODY, now=SPEC_TIMESTAMP)


def test_no_signature_header_without_a_secret():
	headers = signing.signature_headers(None, "msg_1", "{}", 1)
	assert headers == {"webhook-id": "msg_1", "webhook-timestamp": "1"}


@pytest.mark.parametrize(
	"secret, reason",
	[
		("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with"),
		("whsec_not base64!", "valid base64"),
		("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes"),
		("whsec_" + base64.b64encode(b"x" * 65).decode(), "24 to 64 bytes"),
	],
)
def test_malformed_secrets_are_rejected_with_a_reason(secret, reason):
	with pytest.raises(ValueError, match=reason):
		signing.decode_secret(secret)


def test_generated_secrets_are_valid_and_distinct():
	a, b = signing.generate_secret(), signing.generate_secret()
	assert a != b
	assert len(signing.decode_secret(a)) == 32


@given(body=st.binary(max_size=2048), msg_id=st.text(min_size=1, max_size=40).filter(lambda s: "." not in s))
def test_any_body_round_trips_and_any_flipped_byte_fails(body, msg_id):
	headers = signing.signature_headers(SPEC_SECRET, msg_id, body, SPEC_TIMESTAMP)
	assert signing.verify(SPEC_SECRET, headers, body, now=SPEC_TIMESTAMP) == msg_id
	if body:
		tampered = bytes([body[0] ^ 1]) + body[1:]
		with pytest.raises(WebhookVerificationError):
			signing.verify(SPEC_SECRET, headers, tampered, now=SPEC_TIMESTAMP)


def test_plain_hmac_header_base64_and_hex():
	import hashlib
	import hmac

	body = b'{"id": 1}'
	digest = hmac.new(b"shpss_secret", body, hashlib.sha256).digest()
	signing.verify_hmac_header("shpss_secret", base64.b64encode(digest).decode(), body)
	signing.verify_hmac_header("shpss_secret", digest.hex(), body, encoding="hex")
	with pytest.raises(WebhookVerificationError):
		signing.verify_hmac_header("other", base64.b64encode(digest).decode(), body)
	with pytest.raises(WebhookVerificationError, match="missing"):
		signing.verify_hmac_header("shpss_secret", None, body)
