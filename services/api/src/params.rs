//! Strict query-string parsing: an unknown, repeated or malformed parameter
//! is a 400 that names it, never a silent default or a 500.

use std::str::FromStr;

use crate::error::ApiError;

/// Values one multi-value filter takes at most.
pub const MAX_VALUES: usize = 20;

/// The query string's `name=value` pairs, checked against the names an
/// endpoint knows.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|_| {
                ApiError::parameter("query", "the query string is not valid URL encoding")
            })?;
        for (i, (name, value)) in pairs.iter().enumerate() {
            // A NUL or other control character is never part of a value
            // (and Postgres refuses NUL in text).
            if name.chars().chain(value.chars()).any(char::is_control) {
                return Err(ApiError::parameter(
                    name,
                    format!("{name:?} contains a control character"),
                ));
            }
            if !known.contains(&name.as_str()) {
                return Err(ApiError::parameter(
                    name,
                    format!("unknown parameter {name:?}; known: {}", known.join(", ")),
                ));
            }
            if pairs[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(ApiError::parameter(
                    name,
                    format!("{name} is given more than once"),
                ));
            }
        }
        Ok(Self(pairs))
    }

    /// The value of `name`, trimmed; an empty value counts as absent.
    pub fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(value) = self.raw(name) else {
            return Ok(None);
        };
        if value.chars().count() > 200 {
            return Err(ApiError::parameter(name, format!("{name} is too long")));
        }
        Ok(Some(value.to_owned()))
    }

    /// Comma-separated values (`mark=BMW,Audi`), each trimmed, empty ones
    /// dropped; at most [`MAX_VALUES`] of them.
    pub fn list(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let Some(value) = self.text(name)? else {
            return Ok(Vec::new());
        };
        let values: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        if values.len() > MAX_VALUES {
            return Err(ApiError::parameter(
                name,
                format!("{name} takes at most {MAX_VALUES} comma-separated values"),
            ));
        }
        Ok(values)
    }

    /// A whole number within `min..=max`.
    pub fn number<T>(&self, name: &str, min: T, max: T) -> Result<Option<T>, ApiError>
    where
        T: FromStr + PartialOrd + Copy + std::fmt::Display,
    {
        let Some(value) = self.raw(name) else {
            return Ok(None);
        };
        let parsed: T = value.parse().map_err(|_| {
            ApiError::parameter(
                name,
                format!("{name} must be a whole number, got {value:?}"),
            )
        })?;
        if parsed < min || parsed > max {
            return Err(ApiError::parameter(
                name,
                format!("{name} must be between {min} and {max}, got {parsed}"),
            ));
        }
        Ok(Some(parsed))
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.raw(name) {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(other) => Err(ApiError::parameter(
                name,
                format!("{name} must be true or false, got {other:?}"),
            )),
        }
    }

    /// One of `choices` (as `(text, value)`).
    pub fn choice<T: Copy>(
        &self,
        name: &str,
        choices: &[(&str, T)],
    ) -> Result<Option<T>, ApiError> {
        let Some(value) = self.raw(name) else {
            return Ok(None);
        };
        choices
            .iter()
            .find(|(text, _)| *text == value)
            .map(|(_, v)| Some(*v))
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(t, _)| *t).collect();
                ApiError::parameter(
                    name,
                    format!("{name} must be one of {}, got {value:?}", names.join(", ")),
                )
            })
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameter_of(err: ApiError) -> String {
        match err {
            ApiError::InvalidParameter { parameter, .. } => parameter,
            other => panic!("not a parameter error: {other:?}"),
        }
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused_by_name() {
        let err = Params::parse(Some("mark=BMW&colour=red"), &["mark"])
            .err()
            .unwrap();
        assert_eq!(parameter_of(err), "colour");
        let err = Params::parse(Some("mark=BMW&mark=Audi"), &["mark"])
            .err()
            .unwrap();
        assert_eq!(parameter_of(err), "mark");
    }

    #[test]
    fn numbers_out_of_range_or_not_numbers_are_refused_by_name() {
        let params = Params::parse(
            Some("limit=0&year_from=abc&price_to=5"),
            &["limit", "year_from", "price_to"],
        )
        .unwrap();
        assert_eq!(
            parameter_of(params.number("limit", 1u32, 100).unwrap_err()),
            "limit"
        );
        assert_eq!(
            parameter_of(params.number("year_from", 0i32, 3000).unwrap_err()),
            "year_from"
        );
        assert_eq!(params.number("price_to", 0i64, i64::MAX).unwrap(), Some(5));
        assert_eq!(params.number::<i64>("missing", 0, 1).unwrap(), None);
    }

    #[test]
    fn lists_are_comma_separated_trimmed_and_bounded() {
        let params = Params::parse(Some("mark=BMW,%20Audi,,&city="), &["mark", "city"]).unwrap();
        assert_eq!(params.list("mark").unwrap(), ["BMW", "Audi"]);
        assert!(params.list("city").unwrap().is_empty());
        let many = vec!["x"; MAX_VALUES + 1].join(",");
        let params = Params::parse(Some(&format!("mark={many}")), &["mark"]).unwrap();
        assert_eq!(parameter_of(params.list("mark").unwrap_err()), "mark");
    }

    #[test]
    fn control_characters_are_refused_by_name() {
        for query in ["mark=BM%00W", "mark=%1B", "mark=a%7Fb", "mar%00k=BMW"] {
            let err = Params::parse(Some(query), &["mark"]).err().unwrap();
            assert!(parameter_of(err).starts_with("mar"), "{query}");
        }
    }

    #[test]
    fn empty_values_count_as_absent_and_text_is_decoded() {
        let params =
            Params::parse(Some("mark=&city=%E5%8C%97%E4%BA%AC"), &["mark", "city"]).unwrap();
        assert_eq!(params.text("mark").unwrap(), None);
        assert_eq!(params.text("city").unwrap().as_deref(), Some("北京"));
    }
}
