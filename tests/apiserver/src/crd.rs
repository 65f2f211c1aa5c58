//! CustomResourceDefinitions as the real API server treats them: the name they must have,
//! the status it gives them once their names are served.

use serde_json::{json, Value};

use crate::store::{now_rfc3339, ApiError};

type Result<T> = std::result::Result<T, ApiError>;

/// A CustomResourceDefinition's status as the real API server sets it once its names are
/// served (what `kubectl wait --for condition=established` waits for).
pub fn established() -> Value {
    let now = now_rfc3339();
    let cond = |t: &str, reason: &str| json!({"type": t, "status": "True", "reason": reason, "message": "", "lastTransitionTime": now});
    json!({"conditions": [cond("NamesAccepted", "NoConflicts"), cond("Established", "InitialNamesAccepted")]})
}

pub fn invalid(name: &str, why: &str) -> ApiError {
    ApiError::new(422, "Invalid", format!("CustomResourceDefinition.apiextensions.k8s.io \"{name}\" is invalid: {why}"))
}

/// Checks a CustomResourceDefinition without serving it: `metadata.name` must be
/// `plural.group`, as the real API server requires.
pub fn valid(name: &str, obj: &Value) -> Result<()> {
    let spec = |f: &str| obj.pointer(f).and_then(Value::as_str).unwrap_or("");
    let want = format!("{}.{}", spec("/spec/names/plural"), spec("/spec/group"));
    if name != want {
        return Err(invalid(
            name,
            &format!("metadata.name: Invalid value: must be spec.names.plural+\".\"+spec.group ({want})"),
        ));
    }
    Ok(())
}
