//! Session tokens: HS256 JWTs carrying the user, the session and the expiry.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: Uuid,
    /// The session.
    pub sid: Uuid,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
}

/// Signs and checks tokens with one secret.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Tokens {
    /// Tokens signed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Signs a token for `user`'s `session`, started at `started_at_us`
    /// and valid until `expires_at_us`. The token is a function of these
    /// alone, so the retry of a login answers the very same token.
    pub fn issue(
        &self,
        user: Uuid,
        session: Uuid,
        started_at_us: i64,
        expires_at_us: i64,
    ) -> String {
        let claims = Claims {
            sub: user,
            sid: session,
            exp: expires_at_us / 1_000_000,
            iat: started_at_us / 1_000_000,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).unwrap_or_default()
    }

    /// Checks signature and expiry.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_with_its_secret_only_and_not_after_expiry() {
        let t = Tokens::new(b"secret-one");
        let future = (chrono::Utc::now().timestamp() + 60) * 1_000_000;
        let token = t.issue(Uuid::from_u128(1), Uuid::from_u128(2), 0, future);
        let claims = t.verify(&token).expect("valid");
        assert_eq!(
            (claims.sub, claims.sid),
            (Uuid::from_u128(1), Uuid::from_u128(2))
        );
        assert!(Tokens::new(b"secret-two").verify(&token).is_none());
        let past = (chrono::Utc::now().timestamp() - 5) * 1_000_000;
        assert!(t
            .verify(&t.issue(Uuid::from_u128(1), Uuid::from_u128(2), 0, past))
            .is_none());
        assert!(t.verify("not.a.token").is_none());
    }
}
