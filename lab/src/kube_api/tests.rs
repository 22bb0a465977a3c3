use super::*;

#[test]
fn paths_name_resources_namespaces_and_subresources() {
    let t = parse_path("/api/v1/namespaces/shop/services/web/status").unwrap();
    assert_eq!(
        (
            t.resource.plural.as_str(),
            t.namespace.as_deref(),
            t.name.as_deref(),
            t.subresource.as_deref()
        ),
        ("services", Some("shop"), Some("web"), Some("status"))
    );
    let t = parse_path("/api/v1/namespaces/shop").unwrap();
    assert_eq!(
        (t.resource.plural.as_str(), t.namespace, t.name.as_deref()),
        ("namespaces", None, Some("shop"))
    );
    let t = parse_path("/apis/ironlb.io/v1beta1/ipaddresspools").unwrap();
    assert_eq!(
        (
            t.resource.group.as_str(),
            t.resource.plural.as_str(),
            t.name
        ),
        ("ironlb.io", "ipaddresspools", None)
    );
    let t = parse_path("/api/v1/nodes/n1").unwrap();
    assert_eq!(
        (t.resource.plural.as_str(), t.name.as_deref()),
        ("nodes", Some("n1"))
    );
}

#[test]
fn selectors_and_merge_patches() {
    let o = json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "x"}}});
    assert!(labels_match(&o, Some("app=web,tier")));
    assert!(!labels_match(&o, Some("app!=web")));
    assert!(fields_match(&o, Some("metadata.name=a")));
    assert!(!fields_match(&o, Some("metadata.name=b")));
    let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
    merge(&mut t, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
    assert_eq!(t, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
}
