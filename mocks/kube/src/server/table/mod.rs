//! `Table` answers (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`), which is
//! how `kubectl get` asks for what it prints: the server picks the columns and renders
//! the cells. Columns and cells follow the real server's printers for the kinds served;
//! a kind without a printer gets Name and Age, as custom resources without printer
//! columns do. Cells of every column are sent (kubectl hides `priority: 1` ones unless
//! `-o wide`).

mod printers;

use serde_json::{json, Value};

use crate::resources::ResourceDef;
use printers::printer;

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// A `Table` of `rows`: each object in the requested API's form (what a row carries) and
/// in its stored form (what the cells are read from; they differ for converted kinds).
pub fn table(
    def: &ResourceDef,
    rows: &[(Value, Value)],
    list_metadata: Value,
    include: IncludeObject,
) -> Value {
    let (columns, render) = printer(def);
    let rows: Vec<Value> = rows
        .iter()
        .map(|(view, stored)| {
            let mut row = json!({"cells": render(stored)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Object => row["object"] = view.clone(),
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": view.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    })
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}
