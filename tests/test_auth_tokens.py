"""Bearer token checks against a real JWKS served over HTTP (tests/oidc.py)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import jwt
import pytest

from tes_core.auth.principal import Owner
from tes_core.auth.tokens import TokenVerifier, challenge
from tes_core.config import ConfigError, Settings
from tes_core.errors import ServiceUnavailable, Unauthorized
from tests.oidc import AUDIENCE, TENANT, IdentityProvider


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    provider.close()


def verifier(idp: IdentityProvider, **extra: str) -> TokenVerifier:
    return TokenVerifier(Settings.from_env(idp.settings(**extra)))


def rejected(check: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthorized) as caught:
        check.verify(token)
    header = caught.value.headers["WWW-Authenticate"]
    assert header.startswith('Bearer realm="tes", error="invalid_token", error_description="')
    return caught.value.message


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_token_signed_by_the_issuer_names_its_owner(idp, alg) -> None:
    principal = verifier(idp).verify(idp.token("alice", alg=alg))
    assert principal.owner == Owner("alice", TENANT)
    assert principal.admin is False
    assert principal.scope == Owner("alice", TENANT)
    assert idp.fetches == {"config": 1, "jwks": 1}  # discovered, then fetched once


def test_claim_names_and_admin_role_are_configurable(idp) -> None:
    check = verifier(idp, TES_AUTH_OWNER_CLAIM="oid", TES_AUTH_TENANT_CLAIM="org",
                     TES_AUTH_ADMIN_CLAIM="scp", TES_AUTH_ADMIN_ROLE="tes.all")
    principal = check.verify(idp.token("ignored", oid="u-1", org="acme", scp="tes.read tes.all"))
    assert principal.owner == Owner("u-1", "acme") and principal.admin and principal.scope is None
    assert not check.verify(idp.token(oid="u-2", scp="tes.read")).admin
    assert verifier(idp).verify(idp.token(roles=["TES.Admin"])).admin
    assert verifier(idp).verify(idp.token(tenant=None)).owner == Owner("alice", "")


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"iss": "https://login.example.org/other/v2.0"}, "another issuer"),
        ({"aud": "api://someone-else"}, "not meant for this API"),
        ({"exp": None}, "no 'exp' claim"),
        ({"sub": None}, "no 'sub' claim"),
    ],
    ids=["expired", "not-yet-valid", "wrong-issuer", "wrong-audience", "no-exp", "no-subject"],
)
def test_bad_claims_are_refused(idp, claims, reason) -> None:
    assert reason in rejected(verifier(idp), idp.token(**claims))


def test_leeway_allows_small_clock_skew(idp) -> None:
    skewed = idp.token(exp=int(time.time()) - 5)
    assert verifier(idp, TES_AUTH_LEEWAY="30").verify(skewed)
    assert "expired" in rejected(verifier(idp, TES_AUTH_LEEWAY="0"), skewed)


def _unsigned(claims: dict, alg: str = "none", kid: str | None = None) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}
    return f"{part(header)}.{part(claims)}."


def test_alg_none_is_refused(idp) -> None:
    good = jwt.decode(idp.token(), options={"verify_signature": False})
    message = rejected(verifier(idp), _unsigned(good, kid=idp.kid("RS256")))
    assert "'none' is not accepted" in message


def test_hmac_signed_with_the_public_key_is_refused(idp) -> None:
    # The classic key-confusion forgery: HS256 keyed with the issuer's public key.
    import hashlib
    import hmac

    kid = idp.kid("RS256")
    claims = jwt.decode(idp.token(), options={"verify_signature": False})
    unsigned = _unsigned(claims, alg="HS256", kid=kid)[:-1]
    signature = hmac.new(idp.public_pem(kid), unsigned.encode(), hashlib.sha256).digest()
    forged = unsigned + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    assert "'HS256' is not accepted" in rejected(verifier(idp), forged)


def test_a_token_signed_by_another_key_is_refused(idp) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    claims = jwt.decode(idp.token(), options={"verify_signature": False})
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": idp.kid("RS256")})
    assert "signature does not match" in rejected(verifier(idp), forged)


def test_a_key_is_only_used_with_its_own_algorithm(idp) -> None:
    # An RS256 token naming the EC key's kid: refused before any signature check.
    token = idp.token(alg="RS256")
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    swapped = jwt.encode(claims, idp.keys[header["kid"]], algorithm="RS256",
                         headers={"kid": idp.kid("ES256")})
    message = rejected(verifier(idp), swapped)
    assert "is for ES256" in message or "not a RS256 key" in message


def test_garbage_is_refused(idp) -> None:
    assert "well-formed" in rejected(verifier(idp), "not-a-jwt")


def test_a_rotated_key_is_fetched_once_and_unknown_kids_cannot_hammer_the_issuer(idp) -> None:
    check = verifier(idp, TES_AUTH_JWKS_MIN_REFRESH="3600")
    check.verify(idp.token())
    assert idp.fetches["jwks"] == 1
    claims = jwt.decode(idp.token(), options={"verify_signature": False})
    for index in range(5):  # forged kids: at most one fetch per TES_AUTH_JWKS_MIN_REFRESH
        forged = _unsigned(claims, alg="RS256", kid=f"forged-{index}") + "c2ln"
        assert "no signing key" in rejected(check, forged)
    assert idp.fetches["jwks"] == 1
    fresh = verifier(idp, TES_AUTH_JWKS_MIN_REFRESH="0")
    fresh.verify(idp.token())
    new_kid = idp.add_key("RS256")  # the issuer rotates its keys
    assert fresh.verify(idp.token("bob", kid=new_kid)).owner.subject == "bob"
    assert idp.fetches["jwks"] == 3  # one for each verifier, one for the new kid


def test_keys_are_fetched_from_a_given_jwks_url_without_discovery(idp) -> None:
    check = verifier(idp, TES_AUTH_JWKS_URL=idp.jwks_url)
    assert check.verify(idp.token(alg="ES256")).owner.subject == "alice"
    assert idp.fetches == {"config": 0, "jwks": 1}


def test_an_unreachable_issuer_is_a_503_until_keys_were_fetched(idp) -> None:
    check = verifier(idp, TES_AUTH_JWKS_MIN_REFRESH="0")
    idp.down = True
    with pytest.raises(ServiceUnavailable):
        check.verify(idp.token())
    idp.down = False
    assert check.verify(idp.token())
    idp.down = True
    assert check.verify(idp.token("carol"))  # keys fetched earlier stay in use


def test_verified_tokens_are_remembered_until_they_expire(idp) -> None:
    check = verifier(idp)
    token = idp.token()
    first = check.verify(token)
    idp.down = True
    assert check.verify(token) is first


def test_discovery_must_name_the_configured_issuer(idp) -> None:
    check = TokenVerifier(Settings.from_env(idp.settings(TES_AUTH_ISSUER=idp.issuer + "/")))
    with pytest.raises(ServiceUnavailable):
        check.verify(idp.token(iss=idp.issuer + "/"))


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"TES_AUTH_ISSUER": ""}, "TES_AUTH_ISSUER"),
        ({"TES_AUTH_AUDIENCE": ""}, "TES_AUTH_AUDIENCE"),
        ({"TES_AUTH_ALGORITHMS": "RS256,HS256"}, "TES_AUTH_ALGORITHMS"),
        ({"TES_AUTH_ALGORITHMS": "none"}, "TES_AUTH_ALGORITHMS"),
    ],
)
def test_bad_auth_settings_are_refused_naming_the_variable(idp, extra, named) -> None:
    with pytest.raises(ConfigError, match=named):
        verifier(idp, **extra)


def test_authorization_header_forms() -> None:
    check = TokenVerifier(Settings.from_env({
        "TES_AUTH_ENABLED": "1", "TES_AUTH_ISSUER": "https://idp.invalid/",
        "TES_AUTH_AUDIENCE": AUDIENCE,
    }))
    for header in (None, "", "Basic dXNlcjpwYXNz"):
        with pytest.raises(Unauthorized) as caught:
            check.authenticate(header)
        # RFC 6750 §3.1: no error code when the request carries no bearer token at all.
        assert caught.value.headers["WWW-Authenticate"] == 'Bearer realm="tes"'
    with pytest.raises(Exception) as caught:
        check.authenticate("Bearer a b")
    assert caught.value.status_code == 400
    assert 'error="invalid_request"' in caught.value.headers["WWW-Authenticate"]


def test_challenge_descriptions_stay_in_the_allowed_characters() -> None:
    assert challenge("invalid_token", 'bad "quote" \\ é') == (
        'Bearer realm="tes", error="invalid_token", error_description="bad quote  "'
    )
