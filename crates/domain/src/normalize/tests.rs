//! One test per rule, the upstream samples read as a person would read them,
//! and property tests over arbitrary JSON.

use chrono::NaiveDate;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

const OFFERS_PAGE: &str = include_str!("../../../../fixtures/upstream/offers_page.json");
const OFFERS_PAGE_LAST: &str = include_str!("../../../../fixtures/upstream/offers_page_last.json");
const CHANGES_PAGE: &str = include_str!("../../../../fixtures/upstream/changes_page.json");
const OFFER: &str = include_str!("../../../../fixtures/upstream/offer.json");

fn items(page: &str) -> Vec<Value> {
    let page: Value = serde_json::from_str(page).unwrap();
    page["result"].as_array().unwrap().clone()
}

fn sample(page: &str, inner_id: &str) -> Listing {
    let item = items(page)
        .into_iter()
        .find(|i| i["inner_id"] == inner_id)
        .unwrap();
    normalize(inner_id, &item["data"]).unwrap()
}

fn one(data: Value) -> Listing {
    normalize("1", &data).unwrap()
}

fn error_of(data: Value) -> String {
    normalize("1", &data).unwrap_err().to_string()
}

fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

// ---- the samples, as a person reads them ----

#[test]
fn the_passat_sample_normalises_to_what_its_listing_says() {
    let car = sample(OFFERS_PAGE, "56234871");
    assert_eq!(car.inner_id, "56234871");
    assert_eq!(
        car.url.as_deref(),
        Some("https://www.che168.com/dealer/512345/56234871.html")
    );
    assert_eq!(car.mark.as_deref(), Some("Volkswagen"));
    assert_eq!(car.model.as_deref(), Some("Passat"));
    assert_eq!(car.title.as_deref(), Some("帕萨特 2021款 330TSI 精英版"));
    assert_eq!(car.year, Some(2021));
    assert_eq!(car.color.as_deref(), Some("White"));
    assert_eq!(car.price, Some(139_800));
    assert_eq!(car.km_age, Some(46_000));
    assert_eq!(car.engine_type.as_deref(), Some("Gasoline"));
    assert_eq!(car.transmission_type.as_deref(), Some("Automatic"));
    assert_eq!(car.body_type.as_deref(), Some("Sedan"));
    assert_eq!(car.drive_type.as_deref(), Some("FWD"));
    assert_eq!(car.displacement, Some(2.0));
    assert_eq!(car.power, Some(186));
    assert_eq!(car.address.as_deref(), Some("北京, 朝阳"));
    assert_eq!(car.city.as_deref(), Some("北京"));
    assert_eq!(car.district.as_deref(), Some("朝阳"));
    assert_eq!(car.seller_type.as_deref(), Some("dealer"));
    assert_eq!(car.is_dealer, Some(true));
    assert_eq!(car.section.as_deref(), Some("Used"));
    assert_eq!(car.salon_id.as_deref(), Some("512345"));
    assert!(car
        .description
        .as_deref()
        .unwrap()
        .starts_with("车况精品，一手车"));
    assert_eq!(car.vin.as_deref(), Some("LSVCC6A46MN072318"));
    assert_eq!(car.offer_created, date(2026, 8, 18));
    assert_eq!(car.first_registration, date(2021, 6, 1));
    assert_eq!(car.is_registered, Some(true));
    assert_eq!(car.images.len(), 4);
    assert!(car.images[0].starts_with("https://2sc2.autoimg.cn/"));
    assert_eq!(car.specid, Some(47921));
    assert_eq!(car.car_name.as_deref(), Some("帕萨特 2021款 330TSI 精英版"));
    assert_eq!(car.manufacturer.as_deref(), Some("上汽大众"));
    assert_eq!(car.car_class.as_deref(), Some("中型车"));
    assert_eq!(car.fuel_type.as_deref(), Some("汽油"));
    assert_eq!(car.emission_standard.as_deref(), Some("国VI"));
    assert_eq!(car.engine_model.as_deref(), Some("DKX"));
    assert_eq!(car.engine_displacement_l, Some(2.0));
    assert_eq!(car.max_horsepower_ps, Some(186));
    assert_eq!(car.max_power_kw, Some(137.0));
    assert_eq!(
        car.transmission_detail.as_deref(),
        Some("湿式双离合变速箱(DCT)")
    );
    assert_eq!(car.gears, Some(7));
}

#[test]
fn the_camry_sample_is_a_private_seller_with_a_cvt_and_no_gear_count() {
    let car = sample(OFFERS_PAGE, "56240517");
    assert_eq!(car.model.as_deref(), Some("凯美瑞"));
    assert_eq!(car.price, Some(126_500));
    assert_eq!(car.seller_type.as_deref(), Some("private"));
    assert_eq!(car.is_dealer, Some(false));
    assert_eq!(car.salon_id, None, "an empty salon_id is NULL");
    assert_eq!(car.city.as_deref(), Some("上海"));
    assert_eq!(car.district.as_deref(), Some("闵行"));
    assert_eq!(car.manufacturer.as_deref(), Some("广汽丰田"));
    assert_eq!(car.emission_standard.as_deref(), Some("国VI"));
    assert_eq!(car.engine_model.as_deref(), Some("M20C"));
    assert_eq!(car.max_power_kw, Some(131.0));
    assert_eq!(car.transmission_detail.as_deref(), Some("无级变速箱(CVT)"));
    assert_eq!(car.gears, None, "挡位个数 \"-\" is NULL");
}

#[test]
fn the_byd_han_sample_is_an_electric_car_without_an_engine_group() {
    let car = sample(OFFERS_PAGE, "56241190");
    assert_eq!(car.mark.as_deref(), Some("BYD"));
    assert_eq!(car.year, Some(2022), "a JSON number year");
    assert_eq!(car.price, Some(159_800));
    assert_eq!(car.km_age, Some(23_000));
    assert_eq!(car.displacement, Some(0.0));
    assert_eq!(car.power, Some(517));
    assert_eq!(car.engine_type.as_deref(), Some("Electric"));
    assert_eq!(car.drive_type.as_deref(), Some("AWD (dual-motor)"));
    assert_eq!(car.images.len(), 3, "images given as a JSON array");
    assert_eq!(car.specid, Some(55127));
    assert_eq!(car.fuel_type.as_deref(), Some("纯电动"));
    assert_eq!(car.engine_model, None);
    assert_eq!(car.engine_displacement_l, None);
    assert_eq!(car.emission_standard, None);
    assert_eq!(car.max_horsepower_ps, Some(517), "from 电动机(Ps)");
    assert_eq!(
        car.max_power_kw,
        Some(380.0),
        "from the whole-car 最大功率(kW)"
    );
    assert_eq!(car.transmission_detail.as_deref(), Some("固定齿比变速箱"));
    assert_eq!(car.gears, Some(1));
}

#[test]
fn every_listing_in_every_sample_page_normalises() {
    for page in [OFFERS_PAGE, OFFERS_PAGE_LAST, CHANGES_PAGE] {
        for item in items(page) {
            let inner_id = item["inner_id"].as_str().unwrap();
            normalize(inner_id, &item["data"]).unwrap();
        }
    }
    let offer: Value = serde_json::from_str(OFFER).unwrap();
    assert_eq!(
        normalize("56234871", &offer).unwrap(),
        sample(OFFERS_PAGE, "56234871")
    );
}

#[test]
fn a_removed_event_without_data_normalises_to_an_empty_listing() {
    let car = normalize("55730921", &Value::Null).unwrap();
    assert_eq!(car.inner_id, "55730921");
    assert_eq!(car.price, None);
    assert!(car.images.is_empty());
}

#[test]
fn a_change_for_an_unknown_listing_normalises_the_fields_it_has() {
    let car = one(json!({"price": 7500}));
    assert_eq!(car.price, Some(7500));
    assert_eq!(car.mark, None);
}

// ---- one test per rule ----

#[test]
fn numbers_arrive_as_json_numbers_or_numeric_strings() {
    assert_eq!(one(json!({"price": 139800})).price, Some(139_800));
    assert_eq!(one(json!({"price": "139800"})).price, Some(139_800));
    assert_eq!(one(json!({"price": " 139,800 "})).price, Some(139_800));
    assert_eq!(one(json!({"price": "139800.0"})).price, Some(139_800));
    assert_eq!(one(json!({"km_age": "46000"})).km_age, Some(46_000));
    assert_eq!(one(json!({"power": 186.0})).power, Some(186));
}

#[test]
fn empty_strings_and_placeholders_become_null() {
    for placeholder in ["", " ", "-", "--", "—", "暂无", "null", "N/A"] {
        let car = one(
            json!({"price": placeholder, "year": placeholder, "mark": placeholder,
            "displacement": placeholder, "is_dealer": placeholder, "offer_created": placeholder}),
        );
        assert_eq!(car.price, None, "{placeholder:?}");
        assert_eq!(car.year, None);
        assert_eq!(car.mark, None);
        assert_eq!(car.displacement, None);
        assert_eq!(car.is_dealer, None);
        assert_eq!(car.offer_created, None);
    }
}

#[test]
fn a_non_numeric_price_is_an_error_naming_the_field() {
    assert_eq!(
        error_of(json!({"price": "call us"})),
        "price: expected a number, got \"call us\""
    );
    assert!(error_of(json!({"price": [1]})).starts_with("price: expected a number"));
    assert!(error_of(json!({"price": "NaN"})).starts_with("price:"));
    assert!(error_of(json!({"price": "inf"})).starts_with("price:"));
}

#[test]
fn every_failing_field_is_reported_at_once() {
    let err = error_of(json!({"price": "x", "year": 3021, "images": 5}));
    assert!(err.contains("price:"), "{err}");
    assert!(err.contains("year: 3021 is outside 1885..=2100"), "{err}");
    assert!(err.contains("images:"), "{err}");
}

#[test]
fn whole_number_fields_refuse_fractions_and_negatives() {
    assert!(error_of(json!({"year": "2021.5"})).starts_with("year: expected a whole number"));
    assert!(error_of(json!({"km_age": -5})).starts_with("km_age:"));
    assert!(error_of(json!({"km_age": 1e12})).starts_with("km_age:"));
}

#[test]
fn displacement_is_litres_as_a_float() {
    assert_eq!(one(json!({"displacement": "1.5"})).displacement, Some(1.5));
    assert_eq!(one(json!({"displacement": "0"})).displacement, Some(0.0));
    assert_eq!(one(json!({"displacement": 2})).displacement, Some(2.0));
    assert!(error_of(json!({"displacement": "1984"})).starts_with("displacement:"));
}

#[test]
fn string_booleans_become_booleans() {
    assert_eq!(one(json!({"is_dealer": true})).is_dealer, Some(true));
    assert_eq!(one(json!({"is_dealer": "true"})).is_dealer, Some(true));
    assert_eq!(one(json!({"is_dealer": "False"})).is_dealer, Some(false));
    assert_eq!(one(json!({"is_dealer": "1"})).is_dealer, Some(true));
    assert_eq!(one(json!({"is_dealer": 0})).is_dealer, Some(false));
    assert!(error_of(json!({"is_dealer": "maybe"})).starts_with("is_dealer:"));
}

#[test]
fn is_dealer_falls_back_to_the_seller_type() {
    assert_eq!(one(json!({"seller_type": "dealer"})).is_dealer, Some(true));
    assert_eq!(
        one(json!({"seller_type": "private"})).is_dealer,
        Some(false)
    );
    assert_eq!(one(json!({"seller_type": "auction"})).is_dealer, None);
}

#[test]
fn text_is_trimmed_and_kept_as_utf8() {
    let car =
        one(json!({"model": " 凯美瑞 ", "salon_id": 512345, "description": "车况精品，一手车"}));
    assert_eq!(car.model.as_deref(), Some("凯美瑞"));
    assert_eq!(car.salon_id.as_deref(), Some("512345"));
    assert_eq!(car.description.as_deref(), Some("车况精品，一手车"));
    assert!(error_of(json!({"mark": {"name": "BMW"}})).starts_with("mark: expected text"));
    assert!(error_of(json!({"vin": "a\u{0}b"})).starts_with("vin:"));
}

#[test]
fn enum_values_are_kept_as_received() {
    let car = one(json!({"body_type": "Кроссовер/внедорожник", "engine_type": "gasoline"}));
    assert_eq!(car.body_type.as_deref(), Some("Кроссовер/внедорожник"));
    assert_eq!(car.engine_type.as_deref(), Some("gasoline"));
}

#[test]
fn images_come_from_an_array_or_a_json_string() {
    let urls = vec!["https://a/1.jpg".to_owned(), "https://a/2.jpg".to_owned()];
    assert_eq!(
        one(json!({"images": ["https://a/1.jpg", "https://a/2.jpg"]})).images,
        urls
    );
    assert_eq!(
        one(json!({"images": "[\"https://a/1.jpg\", \"https://a/2.jpg\"]"})).images,
        urls
    );
    assert_eq!(one(json!({"images": ""})).images, Vec::<String>::new());
    assert_eq!(one(json!({"images": "[]"})).images, Vec::<String>::new());
    assert_eq!(one(json!({})).images, Vec::<String>::new());
    assert!(error_of(json!({"images": "https://a/1.jpg"})).starts_with("images:"));
    assert!(error_of(json!({"images": [1, 2]})).starts_with("images:"));
}

#[test]
fn offer_created_is_a_date_with_any_time_dropped() {
    assert_eq!(
        one(json!({"offer_created": "2026-08-18"})).offer_created,
        date(2026, 8, 18)
    );
    assert_eq!(
        one(json!({"offer_created": "2026-08-18 10:00:00"})).offer_created,
        date(2026, 8, 18)
    );
    assert!(error_of(json!({"offer_created": "18.08.2026"})).starts_with("offer_created:"));
    assert!(error_of(json!({"offer_created": "2026-08-18x"})).starts_with("offer_created:"));
    assert!(error_of(json!({"offer_created": "2026-02-30"})).starts_with("offer_created:"));
}

#[test]
fn first_registration_is_the_first_of_its_month() {
    let car = one(json!({"first_registration": "2021-06"}));
    assert_eq!(car.first_registration, date(2021, 6, 1));
    assert_eq!(car.is_registered, Some(true));
    assert_eq!(
        one(json!({"first_registration": "2021/06"})).first_registration,
        date(2021, 6, 1)
    );
    assert!(error_of(json!({"first_registration": "2021-13"})).starts_with("first_registration:"));
}

#[test]
fn weishangpai_means_not_registered() {
    let car = one(json!({"first_registration": "未上牌"}));
    assert_eq!(car.first_registration, None);
    assert_eq!(car.is_registered, Some(false));
    assert_eq!(one(json!({"first_registration": "-"})).is_registered, None);
}

#[test]
fn the_city_and_district_come_from_the_address() {
    let car = one(json!({"address": "上海, 浦东新区"}));
    assert_eq!(
        (car.city.as_deref(), car.district.as_deref()),
        (Some("上海"), Some("浦东新区"))
    );
    let car = one(json!({"address": "北京, "}));
    assert_eq!((car.city.as_deref(), car.district), (Some("北京"), None));
    let car = one(json!({"address": "深圳"}));
    assert_eq!((car.city.as_deref(), car.district), (Some("深圳"), None));
    let car = one(json!({"address": "广州，天河"}));
    assert_eq!(
        (car.city.as_deref(), car.district.as_deref()),
        (Some("广州"), Some("天河"))
    );
}

fn table(groups: Value) -> Value {
    json!({"extra": {"configuration": {"specid": 1, "paramtypeitems": groups}}})
}

#[test]
fn spec_items_are_matched_by_their_stable_id() {
    let data = table(json!([{"name": "Basic", "paramitems": [
        {"id": 93, "name": "Car name", "value": "Passat"},
        {"id": "94", "name": "Maker", "value": "SAIC VW"}]}]));
    let car = one(data);
    assert_eq!(car.car_name.as_deref(), Some("Passat"));
    assert_eq!(car.manufacturer.as_deref(), Some("SAIC VW"));
}

#[test]
fn spec_items_fall_back_to_their_chinese_name_in_their_group() {
    let data = table(json!([
        {"name": "基本参数", "paramitems": [{"name": "车型名称", "value": "帕萨特"}]},
        {"name": "发动机", "paramitems": [{"name": "最大功率(kW)", "value": "137"}]},
        {"name": "其他", "paramitems": [{"name": "厂商", "value": "not this one"}]}]));
    let car = one(data);
    assert_eq!(car.car_name.as_deref(), Some("帕萨特"));
    assert_eq!(car.max_power_kw, Some(137.0));
    assert_eq!(car.manufacturer, None);
}

#[test]
fn spec_numbers_are_read_by_their_leading_number() {
    let data = table(
        json!([{"name": "变速箱", "paramitems": [{"id": 41, "value": "7挡"}]},
        {"name": "发动机", "paramitems": [{"id": 4, "value": "2.0T"}, {"id": 14, "value": "无"}]}]),
    );
    let car = one(data);
    assert_eq!(car.gears, Some(7));
    assert_eq!(car.engine_displacement_l, Some(2.0));
    assert_eq!(car.max_horsepower_ps, None);
}

#[test]
fn engine_displacement_falls_back_to_millilitres() {
    let data = table(json!([{"name": "发动机", "paramitems": [{"id": 3, "value": "1984"}]}]));
    assert_eq!(one(data).engine_displacement_l, Some(2.0));
}

#[test]
fn the_emission_standard_falls_back_to_the_engine_group() {
    let data = table(json!([{"name": "发动机", "paramitems": [{"id": 25, "value": "国V"}]}]));
    assert_eq!(one(data).emission_standard.as_deref(), Some("国V"));
}

#[test]
fn a_top_level_configuration_object_is_read_when_extra_has_none() {
    let data = json!({"configuration": {"specid": "5", "paramtypeitems": [
        {"name": "基本参数", "paramitems": [{"id": 93, "value": "Han"}]}]}});
    let car = one(data);
    assert_eq!(car.specid, Some(5));
    assert_eq!(car.car_name.as_deref(), Some("Han"));
}

#[test]
fn a_top_level_configuration_string_is_ignored() {
    let car = one(json!({"configuration": "2.0T 豪华版", "specid": "47921"}));
    assert_eq!(car.car_name, None);
    assert_eq!(car.specid, Some(47921), "the top-level specid");
}

#[test]
fn extra_configuration_wins_over_a_top_level_one() {
    let mut data = table(json!([{"name": "基本参数", "paramitems": [{"id": 93, "value": "A"}]}]));
    data["configuration"] =
        json!({"paramtypeitems": [{"name": "基本参数", "paramitems": [{"id": 93, "value": "B"}]}]});
    assert_eq!(one(data).car_name.as_deref(), Some("A"));
}

#[test]
fn a_malformed_spec_table_is_an_error() {
    assert!(error_of(table(json!("oops"))).starts_with("configuration: paramtypeitems is"));
    assert!(error_of(table(json!([5]))).starts_with("configuration: a group is"));
    assert!(
        error_of(table(json!([{"name": "x", "paramitems": [[]]}]))).starts_with("configuration:")
    );
}

#[test]
fn seller_phones_in_extra_inspection_are_never_copied() {
    let data = json!({"mark": "BMW", "extra": {"inspection": {"phone": "13800138000"}}});
    let record = serde_json::to_string(&one(data)).unwrap();
    assert!(!record.contains("13800138000"), "{record}");
    assert!(!record.contains("inspection"), "{record}");
}

#[test]
fn data_that_is_not_an_object_is_an_error() {
    assert_eq!(
        error_of(json!([1, 2])),
        "data: expected an object, got an array"
    );
    assert_eq!(error_of(json!("x")), "data: expected an object, got \"x\"");
}

#[test]
fn the_record_serialises_every_column_with_dates_as_iso_text() {
    let record = serde_json::to_value(sample(OFFERS_PAGE, "56234871")).unwrap();
    assert_eq!(record["first_registration"], "2021-06-01");
    assert_eq!(record["price"], 139_800);
    assert_eq!(record["car_name"], "帕萨特 2021款 330TSI 精英版");
    assert_eq!(record.as_object().unwrap().len(), 40);
}

// ---- properties ----

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        "[0-9.,-]{0,8}".prop_map(Value::String),
        Just(Value::String("未上牌".into())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "url",
    "mark",
    "model",
    "title",
    "year",
    "color",
    "price",
    "km_age",
    "engine_type",
    "transmission_type",
    "body_type",
    "drive_type",
    "displacement",
    "power",
    "address",
    "seller_type",
    "is_dealer",
    "section",
    "salon_id",
    "description",
    "vin",
    "offer_created",
    "first_registration",
    "specid",
    "images",
    "configuration",
    "extra",
];

proptest! {
    #[test]
    fn any_json_value_in_any_field_gives_a_listing_or_an_error_naming_it(
        field in prop::sample::select(FIELDS), value in any_json()
    ) {
        let mut data: Value = serde_json::from_str(OFFER).unwrap();
        data[field] = value;
        match normalize("56234871", &data) {
            Ok(listing) => prop_assert!(serde_json::to_string(&listing).is_ok()),
            Err(err) => {
                let named = err.problems.iter().any(|(f, _)| *f == field
                    || (*f == "configuration" && field == "extra")
                    || (*f == "is_dealer" && field == "seller_type"));
                prop_assert!(named, "{field}: {err}");
            }
        }
    }

    #[test]
    fn any_json_document_never_panics(data in any_json()) {
        let _ = normalize("1", &data);
    }

    #[test]
    fn any_value_inside_the_spec_table_never_panics(value in any_json(), id in 0i64..120) {
        let data = table(json!([{"name": "发动机", "paramitems": [{"id": id, "name": "x", "value": value}]}]));
        let _ = normalize("1", &data);
    }

    #[test]
    fn numeric_strings_and_numbers_give_the_same_price(price in 0i64..10_000_000) {
        prop_assert_eq!(one(json!({"price": price})).price, Some(price));
        prop_assert_eq!(one(json!({"price": price.to_string()})).price, Some(price));
    }
}
