//! The one path from a product to the model's input, shared by every front door (the predict
//! stage's data, `xmc predict`, `xmc serve`, Python, Spark): the fields are cleaned by the
//! model's dataset descriptor (white space, prices, the store's default name) and rendered with
//! the model's template, so the same product gets the same input text, and so the same answer,
//! whichever door it comes through.

use xmc_data::ingest::{Field, RawRow};
use xmc_data::{DatasetDescriptor, InputTemplate, ProductRecord, RowIssue};

/// A model's input renderer: its dataset descriptor and its template.
#[derive(Debug, Clone)]
pub struct ModelInput {
    descriptor: DatasetDescriptor,
    template: InputTemplate,
}

/// A product given field by field (the server's JSON, a list of titles): every field but the
/// title may be missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductFields {
    pub title: String,
    pub description: Option<String>,
    pub store: Option<String>,
    pub manufacturer: Option<String>,
    pub brand: Option<String>,
    /// As written (`"£24.99"`, `"24.99"`); parsed by the descriptor's price rules.
    pub price: Option<String>,
}

impl ModelInput {
    pub fn new(descriptor: DatasetDescriptor, template: InputTemplate) -> Self {
        ModelInput { descriptor, template }
    }

    pub fn descriptor(&self) -> &DatasetDescriptor {
        &self.descriptor
    }

    /// A raw row (columns already mapped to fields) as a cleaned record, or why it cannot be one.
    pub fn record(&self, row: &RawRow) -> Result<ProductRecord, RowIssue> {
        xmc_data::clean_row(&self.descriptor, row).map(|(record, _)| record)
    }

    /// The model input of a record cleaned by this descriptor ([`ModelInput::record`], or the
    /// records `xmc_data::stream_records` hands over, which it cleans with the same function).
    pub fn text(&self, record: &ProductRecord) -> String {
        self.template.render(record)
    }

    /// The model input of a product given field by field: cleaned as a row of the dataset's file
    /// would be, then rendered.
    pub fn text_of_fields(&self, fields: &ProductFields) -> Result<String, RowIssue> {
        let mut row = RawRow::default();
        let mut set = |field: Field, value: Option<&String>| row.values[field as usize] = value.cloned();
        // The id is the caller's: a placeholder keeps a descriptor with an id column content.
        set(Field::Id, Some(&"-".to_string()));
        set(Field::Title, Some(&fields.title));
        set(Field::Description, fields.description.as_ref());
        set(Field::Store, fields.store.as_ref());
        set(Field::Manufacturer, fields.manufacturer.as_ref());
        set(Field::Brand, fields.brand.as_ref());
        set(Field::Price, fields.price.as_ref());
        Ok(self.text(&self.record(&row)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ModelInput {
        let descriptor: DatasetDescriptor = toml::from_str(
            "name = \"shop\"\npath = \"x.csv\"\nstore_name = \"Shop\"\n[columns]\nid = \"id\"\ntitle = \"title\"\nprice = \"price\"\n",
        )
        .unwrap();
        ModelInput::new(descriptor, InputTemplate::parse("Retailer: {store} Price: {price} Description: {title}").unwrap())
    }

    /// A product given field by field is cleaned as a file's row is: white space collapsed, the
    /// price parsed, the store defaulting to the descriptor's.
    #[test]
    fn fields_are_cleaned_as_a_rows_would_be() {
        let input = input();
        let fields = ProductFields { title: "  Lego   car ".into(), price: Some("£24.99".into()), ..Default::default() };
        let mut row = RawRow { line: 7, ..RawRow::default() };
        row.values[Field::Id as usize] = Some("a".into());
        row.values[Field::Title as usize] = Some("Lego car".into());
        row.values[Field::Price as usize] = Some("24.99".into());
        let from_row = input.text(&input.record(&row).unwrap());
        assert_eq!(input.text_of_fields(&fields).unwrap(), from_row);
        assert!(from_row.contains("Retailer: Shop") && from_row.contains("Description: Lego car"), "{from_row}");
        let err = input.text_of_fields(&ProductFields { title: "  ".into(), ..Default::default() }).unwrap_err();
        assert_eq!(err.kind, "empty title");
    }
}
