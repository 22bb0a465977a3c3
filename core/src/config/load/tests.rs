use super::*;

const POOL: &str = "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\n\
                    metadata: {name: NAME}\nspec: {addresses: [192.0.2.0/24]}\n";

fn pool(name: &str) -> String {
    POOL.replace("NAME", name)
}

fn messages(errors: &[ConfigError]) -> Vec<String> {
    errors.iter().map(|e| e.to_string()).collect()
}

#[test]
fn splits_streams_as_yaml_does() {
    let texts = |t: &str| -> Vec<(usize, String)> {
        split_documents(t)
            .into_iter()
            .map(|d| (d.first_line, d.text))
            .collect()
    };
    assert_eq!(texts(""), []);
    assert_eq!(texts("# only a comment\n"), []);
    assert_eq!(texts("a: 1\n"), [(0, "a: 1\n".to_owned())]);
    assert_eq!(
        texts("a: 1\n---\nb: 2\n"),
        [(0, "a: 1\n".to_owned()), (1, "   \nb: 2\n".to_owned())]
    );
    // serde_yaml numbers these four documents the same way.
    assert_eq!(texts("---\n---\na: 1\n...\n---\nb: 2\n---\n").len(), 4);
    assert_eq!(
        texts("--- {a: 1}\r\n--- # c\r\nb: |\n  ---x\n"),
        [
            (0, "    {a: 1}\r\n".to_owned()),
            (1, "    # c\r\nb: |\n  ---x\n".to_owned())
        ]
    );
    assert_eq!(
        texts("%YAML 1.2\n---\na: 1\n"),
        [(1, "   \na: 1\n".to_owned())]
    );
    assert_eq!(texts("\u{feff}a: 1"), [(0, "a: 1".to_owned())]);
    // Not markers: longer dashes, or dashes not alone.
    assert_eq!(texts("----\n---a\n").len(), 1);
}

#[test]
fn loads_every_document_of_a_file() {
    let text = format!(
        "{}---\n# nothing here\n---\n{}---\n\
         apiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: l2}}\n\
         ---\napiVersion: ironlb.io/v1beta1\nkind: BGPPeer\nmetadata: {{name: r1}}\n\
         spec: {{myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1}}\n\
         ---\napiVersion: ironlb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: b}}\n\
         ---\napiVersion: ironlb.io/v1beta1\nkind: Community\nmetadata: {{name: c}}\n\
         spec: {{communities: [{{name: gold, value: '64500:1'}}]}}\n\
         ---\napiVersion: ironlb.io/v1beta1\nkind: BFDProfile\nmetadata: {{name: fast}}\n\
         spec: {{receiveInterval: 100}}\n",
        pool("a"),
        pool("b")
    );
    let loaded = Documents::from_str(&text, "all.yaml");
    assert_eq!(messages(&loaded.errors), Vec::<String>::new());
    let docs = loaded.documents;
    let pools: Vec<_> = docs
        .ip_address_pools
        .iter()
        .map(|p| (p.object.metadata.name.clone().unwrap(), p.origin.document))
        .collect();
    assert_eq!(pools, [("a".to_owned(), 1), ("b".to_owned(), 3)]);
    assert_eq!(docs.l2_advertisements[0].origin, Origin::new("all.yaml", 4));
    assert_eq!(docs.bgp_peers[0].object.spec.my_asn, Some(64500));
    assert_eq!(docs.bgp_advertisements.len(), 1);
    assert_eq!(docs.communities[0].object.spec.communities[0].name, "gold");
    assert_eq!(docs.bfd_profiles[0].object.spec.receive_interval, Some(100));
    assert_eq!(docs.bfd_profiles[0].origin.document, 8);
}

#[test]
fn a_bad_document_does_not_hide_the_others() {
    let text = format!(
        "{}---\nkind: [unclosed\n---\n{}---\n\
         apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: c}}\n\
         spec:\n  addresses: 192.0.2.0/24\n---\n{}",
        pool("a"),
        pool("b"),
        pool("d")
    );
    let loaded = Documents::from_str(&text, "pools.yaml");
    let names: Vec<_> = loaded
        .documents
        .ip_address_pools
        .iter()
        .map(|p| p.object.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "d"]);
    assert_eq!(
        messages(&loaded.errors),
        [
            "pools.yaml (document 2): invalid YAML: did not find expected ',' or ']' \
             at line 7 column 1, while parsing a flow sequence at line 6 column 7",
            "pools.yaml (document 4): IPAddressPool/c: spec.addresses: invalid type: \
             string \"192.0.2.0/24\", expected a sequence at line 17 column 14",
        ]
    );
}

#[test]
fn type_mismatches_name_the_field() {
    let text = "apiVersion: ironlb.io/v1beta1\nkind: BGPPeer\nmetadata:\n  name: r1\n\
                spec:\n  myASN: [1]\n";
    let loaded = Documents::from_str(text, "peers.yaml");
    assert_eq!(
        messages(&loaded.errors),
        [
            "peers.yaml (document 1): BGPPeer/r1: spec.myASN: invalid type: sequence, \
          expected i64 at line 6 column 10"
        ]
    );
    assert!(loaded.documents.is_empty());
}

#[test]
fn unknown_kinds_and_metallb_documents_are_refused() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n\
                apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\n\
                spec: {addresses: [192.0.2.0/24]}\n---\n\
                apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\n---\n\
                apiVersion: metallb.io/v1beta1\nkind: ServiceL2Status\nmetadata: {name: s}\n\
                ---\napiVersion: ironlb.io/v1beta1\nkind: AddressPool\nmetadata: {name: x}\n\
                ---\napiVersion: ironlb.io/v1\nkind: IPAddressPool\nmetadata: {name: y}\n\
                ---\nkind: IPAddressPool\nmetadata: {name: z}\n---\napiVersion: v1\n\
                ---\n- a list\n";
    let loaded = Documents::from_str(text, "mixed.yaml");
    assert!(loaded.documents.is_empty());
    assert_eq!(
        messages(&loaded.errors),
        [
            "mixed.yaml (document 1): Deployment/web: unsupported apiVersion and kind \
             apps/v1 Deployment: expected ironlb.io/v1beta1 IPAddressPool, L2Advertisement, \
             BGPAdvertisement, BGPPeer, Community, BFDProfile, or v1 Service or Namespace",
            "mixed.yaml (document 2): IPAddressPool/p: apiVersion metallb.io/v1beta1 is \
             MetalLB's: change it to ironlb.io/v1beta1",
            "mixed.yaml (document 3): BGPPeer/r: apiVersion metallb.io/v1beta2 is \
             MetalLB's: change it to ironlb.io/v1beta1",
            "mixed.yaml (document 4): ServiceL2Status/s: MetalLB's ServiceL2Status \
             (apiVersion metallb.io/v1beta1) has no ironlb equivalent",
            "mixed.yaml (document 5): AddressPool/x: unknown kind \"AddressPool\" in \
             ironlb.io/v1beta1: expected one of IPAddressPool, L2Advertisement, \
             BGPAdvertisement, BGPPeer, Community, BFDProfile",
            "mixed.yaml (document 6): IPAddressPool/y: apiVersion ironlb.io/v1 is not \
             supported: use ironlb.io/v1beta1",
            "mixed.yaml (document 7): IPAddressPool/z: apiVersion: is required (a string)",
            "mixed.yaml (document 8): kind: is required (a string)",
            "mixed.yaml (document 9): a document must be a mapping with apiVersion, kind, \
             metadata and spec",
        ]
    );
}

#[test]
fn services_and_namespaces_are_loaded() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n\
                spec:\n  type: LoadBalancer\n  ports: [{port: 80, protocol: TCP}]\n---\n\
                apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: \
                {team: web}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: bad}\n\
                spec: {ports: [{port: x}]}\n";
    let loaded = Documents::from_str(text, "svc.yaml");
    let docs = &loaded.documents;
    assert_eq!(docs.services.len(), 1);
    let svc = &docs.services[0].object;
    assert_eq!(svc.metadata.namespace.as_deref(), Some("shop"));
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(spec.ports.as_ref().unwrap()[0].port, 80);
    assert_eq!(docs.namespaces.len(), 1);
    let labels = docs.namespaces[0].object.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["team"], "web");
    assert_eq!(docs.namespaces[0].origin.document, 2);
    assert_eq!(loaded.errors.len(), 1);
    let message = loaded.errors[0].to_string();
    assert!(
        message.starts_with("svc.yaml (document 3): Service/bad: spec.ports[0].port: "),
        "{message}"
    );
}

#[test]
fn directories_load_in_file_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| fs::write(dir.path().join(name), text).unwrap();
    write("20-b.yaml", &pool("b"));
    write("10-a.yml", &format!("{}---\n{}", pool("a1"), pool("a2")));
    write(
        "30-c.json",
        &serde_json::to_string(&serde_yaml::from_str::<serde_json::Value>(&pool("c")).unwrap())
            .unwrap(),
    );
    write("40-ignored.txt", &pool("x"));
    write(".hidden.yaml", &pool("y"));
    fs::create_dir(dir.path().join("50-sub.yaml")).unwrap();
    fs::write(dir.path().join("50-sub.yaml").join("p.yaml"), pool("z")).unwrap();
    write("60-broken.yaml", "apiVersion: [\n");
    let loaded = Documents::load(dir.path());
    let got: Vec<_> = loaded
        .documents
        .ip_address_pools
        .iter()
        .map(|p| {
            let file = Path::new(&p.origin.file).file_name().unwrap().to_owned();
            (
                p.object.metadata.name.clone().unwrap(),
                file.to_string_lossy().into_owned(),
                p.origin.document,
            )
        })
        .collect();
    let want = [
        ("a1", "10-a.yml", 1),
        ("a2", "10-a.yml", 2),
        ("b", "20-b.yaml", 1),
        ("c", "30-c.json", 1),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(n, f, d)| (n.to_string(), f.to_string(), *d))
        .collect();
    assert_eq!(got, want);
    assert_eq!(loaded.errors.len(), 1);
    let broken = dir.path().join("60-broken.yaml");
    assert!(loaded.errors[0].to_string().starts_with(&format!(
        "{} (document 1): invalid YAML: ",
        broken.display()
    )));
}

#[test]
fn missing_paths_and_non_utf8_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let loaded = Documents::load(&missing);
    assert_eq!(loaded.errors.len(), 1);
    assert!(loaded.errors[0]
        .to_string()
        .starts_with(&format!("cannot read {}: ", missing.display())));
    let latin1 = dir.path().join("latin1.yaml");
    fs::write(&latin1, b"name: caf\xe9\n").unwrap();
    let loaded = Documents::load(&latin1);
    assert_eq!(
        messages(&loaded.errors),
        [format!(
            "cannot read {}: the file is not UTF-8 text",
            latin1.display()
        )]
    );
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        Documents::load(empty.path()).into_result(),
        Ok(Documents::default())
    );
}

#[test]
fn load_config_reports_load_and_validation_errors_together() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    let text = format!(
        "{}---\napiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: b}}\n\
         spec: {{addresses: [192.0.2.128/25]}}\n---\nspec: [\n",
        pool("a")
    );
    fs::write(&file, text).unwrap();
    let errors = load_config(&file).unwrap_err();
    let file = file.display();
    assert_eq!(
        errors.to_string(),
        format!(
            "{file} (document 2): IPAddressPool/b: spec.addresses[0]: \"192.0.2.128/25\" \
             overlaps \"192.0.2.0/24\" of pool a (spec.addresses[0])\n\
             {file} (document 3): invalid YAML: did not find expected node content at line \
             12 column 1, while parsing a flow node"
        )
    );
    fs::write(dir.path().join("config.yaml"), pool("a")).unwrap();
    let (docs, config) = load_config(dir.path()).unwrap();
    assert_eq!(docs.ip_address_pools.len(), 1);
    assert_eq!(config.pools.len(), 1);
}

#[test]
fn the_standalone_example_loads_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/standalone");
    let (docs, config) = match load_config(&dir) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("{errors}"),
    };
    assert!(!docs.services.is_empty() && !docs.namespaces.is_empty());
    assert_eq!(config.pools.len(), 3);
    assert_eq!(config.bgp_advertisements[0].communities.len(), 2);
}

#[test]
fn lists_are_read_item_by_item() {
    // What `kubectl get svc,ipaddresspools -o yaml` prints: one List holding every object.
    let text = "apiVersion: v1\nkind: List\nitems:\n\
                - apiVersion: v1\n  kind: Service\n  metadata: {name: web, namespace: shop}\n\
                \x20 spec: {type: LoadBalancer, ports: [{port: 80}]}\n\
                \x20 status: {loadBalancer: {ingress: [{ip: 192.0.2.7}]}}\n\
                - apiVersion: ironlb.io/v1beta1\n  kind: IPAddressPool\n  metadata: {name: p}\n\
                \x20 spec: {addresses: [192.0.2.0/24]}\n\
                - apiVersion: v1\n  kind: Service\n  metadata: {name: bad}\n  spec: {ports: [{port: x}]}\n\
                ---\napiVersion: v1\nkind: List\nitems: 7\n";
    let loaded = Documents::from_str(text, "all.yaml");
    let docs = &loaded.documents;
    assert_eq!(docs.services.len(), 1);
    assert_eq!(
        docs.services[0].object.metadata.name.as_deref(),
        Some("web")
    );
    assert_eq!(docs.ip_address_pools.len(), 1);
    assert_eq!(docs.ip_address_pools[0].origin.document, 1);
    let messages = messages(&loaded.errors);
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].starts_with("all.yaml (document 1): Service/bad: spec.ports[0].port: "),
        "{messages:?}"
    );
    assert_eq!(
        messages[1],
        "all.yaml (document 2): List: items: must be a list of objects"
    );
}
