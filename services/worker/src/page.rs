//! What a task may ask beyond its target (`tasks.params`, migration 0010)
//! and what a rendered or extracted page adds to its result.

use serde::{Deserialize, Serialize};

use crate::extract::Extracted;

/// A task's parameters: `{"wait_for": CSS, "extract": profile,
/// "screenshot": true}`; every key optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskParams {
    /// `render_url`: wait until this selector matches (else network idle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<String>,
    /// The extraction profile (`worker.extract.<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<String>,
    /// `render_url`: keep a PNG screenshot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub screenshot: bool,
}

impl TaskParams {
    pub fn from_json(value: &serde_json::Value) -> anyhow::Result<Self> {
        if value.is_null() {
            return Ok(Self::default());
        }
        serde_json::from_value(value.clone())
            .map_err(|e| anyhow::anyhow!("bad task parameters {value}: {e}"))
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// What a page adds to a `Fetched` outcome.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    /// The URL after redirects (`render_url`).
    pub final_url: Option<String>,
    /// PNG, when the task asked for one.
    pub screenshot: Option<Vec<u8>>,
    pub extracted: Option<Extracted>,
}

impl Extras {
    pub fn is_empty(&self) -> bool {
        self.final_url.is_none() && self.screenshot.is_none() && self.extracted.is_none()
    }

    pub fn to_page_data(&self, task_id: i64, lease: i64) -> db::results::PageData {
        db::results::PageData {
            task_id,
            lease,
            final_url: self.final_url.clone(),
            profile: self.extracted.as_ref().map(|e| e.profile.clone()),
            data: self
                .extracted
                .as_ref()
                .map(|e| serde_json::Value::Object(e.data.clone())),
            missing_fields: self.extracted.as_ref().map(|e| e.missing.clone()),
            screenshot: self.screenshot.clone(),
        }
    }
}
