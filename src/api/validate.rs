//! Spec checks the schema cannot express; errors name the field and the fix.
