//! eBADGE bus: operator tooling (local broker supervisor, PKI, provisioning, audit, revocation); it arrives with the operator-tooling issue.
