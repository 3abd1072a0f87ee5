"""The ID token checks of `accounts.sso.OidcBackend`, on real tokens of the provider: the one
our client gets is accepted, and one with a bad signature, for another audience, from
another issuer or expired is refused. mozilla-django-oidc alone checks neither audience nor
issuer, so these fail without our checks."""

import base64
import time
from datetime import UTC, datetime

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import SuspiciousOperation

from accounts.sso import OidcBackend
from tests.sso.support import OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, OTHER_REDIRECT_URI

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

NONCE = "nonce-of-a-test"


@pytest.fixture
def good_token(sso):
    return sso.tokens("alice", nonce=NONCE)["id_token"]


def verify(token: str, nonce: str = NONCE) -> dict:
    """What the callback does with the token the provider returned."""
    return OidcBackend().verify_token(token, nonce=nonce)


def test_it_accepts_the_providers_token_for_us(sso, good_token):
    claims = verify(good_token)

    assert claims["sub"] == "alice"
    assert claims["iss"] == sso.issuer
    assert claims["aud"] == "coachdesk"


def test_it_refuses_a_token_whose_signature_was_altered(good_token):
    header, payload, signature = good_token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[10] ^= 0x01
    forged = ".".join([header, payload, base64.urlsafe_b64encode(raw).rstrip(b"=").decode()])

    with pytest.raises(SuspiciousOperation, match="Signature verification failed"):
        verify(forged)


def test_it_refuses_a_token_signed_by_another_key(good_token):
    claims = jwt.decode(good_token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(good_token)["kid"]
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": kid})

    with pytest.raises(SuspiciousOperation, match="Signature verification failed"):
        verify(forged)


def test_it_refuses_a_token_of_the_provider_for_another_client(sso):
    theirs = sso.tokens(
        "alice",
        nonce=NONCE,
        client_id=OTHER_CLIENT_ID,
        client_secret=OTHER_CLIENT_SECRET,
        redirect_uri=OTHER_REDIRECT_URI,
    )["id_token"]
    assert jwt.decode(theirs, options={"verify_signature": False})["aud"] == OTHER_CLIENT_ID

    with pytest.raises(SuspiciousOperation, match="Audience doesn't match"):
        verify(theirs)


def test_it_refuses_a_token_of_another_issuer(settings, sso, good_token):
    # We expect another issuer; the keys stay the provider's, so only the issuer differs.
    settings.OIDC_OP_JWKS_ENDPOINT = sso.discovery()["jwks_uri"]
    settings.OIDC_ISSUER = sso.issuer + "/elsewhere"

    with pytest.raises(SuspiciousOperation, match="Invalid issuer"):
        verify(good_token)


def test_it_refuses_an_expired_token(settings, good_token):
    expires = jwt.decode(good_token, options={"verify_signature": False})["exp"]
    after = expires + settings.OIDC_LEEWAY_SECONDS + 1

    with (
        time_machine.travel(datetime.fromtimestamp(after, tz=UTC), tick=False),
        pytest.raises(SuspiciousOperation, match="Signature has expired"),
    ):
        verify(good_token)
    # Within the leeway (clock skew) it still passes.
    with time_machine.travel(datetime.fromtimestamp(after - 2, tz=UTC), tick=False):
        assert verify(good_token)["sub"] == "alice"


def test_it_refuses_a_token_with_another_nonce(good_token):
    with pytest.raises(SuspiciousOperation, match="Nonce"):
        verify(good_token, nonce="the nonce of another login")


def test_it_refuses_an_unsigned_token(good_token):
    claims = jwt.decode(good_token, options={"verify_signature": False})
    unsigned = jwt.encode(claims, key=None, algorithm="none")

    with pytest.raises(SuspiciousOperation, match="alg 'none'"):
        verify(unsigned)


def test_it_refuses_an_expired_token_at_the_callback_and_signs_no_one_in(client, sign_in, settings):
    """The whole flow, our clock moved past the ID token's expiry (60 s at the provider)
    before the callback exchanges the code."""
    later = time.time() + 60 + settings.OIDC_LEEWAY_SECONDS + 30

    with time_machine.travel(datetime.fromtimestamp(later, tz=UTC)):
        response = sign_in("alice")

    assert response.status_code == 400
    assert "could not be verified" in response.content.decode()
    assert not client.get("/accounts/tokens/").wsgi_request.user.is_authenticated
