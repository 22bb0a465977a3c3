//! The controller and the speaker under their manifests' security contexts (setpriv).

use super::*;

/// What a container's securityContext (pod level merged with container level) asks of the
/// kernel, read from a manifest.
#[derive(Debug)]
struct Context {
    user: u64,
    group: u64,
    add: Vec<String>,
    no_new_privs: bool,
    read_only_root: bool,
}

fn context_of(manifest: &str, kind: &str) -> Context {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(manifest)).unwrap();
    let doc: serde_json::Value = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .find(|v: &serde_json::Value| v["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {manifest}"));
    let pod = &doc["spec"]["template"]["spec"];
    let c = &pod["containers"][0]["securityContext"];
    let pick = |k: &str| c[k].as_u64().or(pod["securityContext"][k].as_u64());
    let drop: Vec<&str> = c["capabilities"]["drop"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(drop, ["ALL"], "{manifest}: capabilities must drop ALL");
    Context {
        user: pick("runAsUser").unwrap(),
        group: pick("runAsGroup").unwrap(),
        add: c["capabilities"]["add"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .map(|s| s.to_lowercase())
                    .collect()
            })
            .unwrap_or_default(),
        no_new_privs: c["allowPrivilegeEscalation"] == false,
        read_only_root: c["readOnlyRootFilesystem"] == true,
    }
}

/// The command that runs `args` as a container runtime would under `ctx`: a read-only root
/// (only `writable` stays writable, as a volume would), then setpriv for the user, group,
/// capability bounding set and no_new_privs.
fn contained(ctx: &Context, writable: &[&Path], args: &[String]) -> Vec<String> {
    let bounding = std::iter::once("-all".to_string())
        .chain(ctx.add.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    let mut setpriv = vec![
        "setpriv".to_string(),
        format!("--reuid={}", ctx.user),
        format!("--regid={}", ctx.group),
        "--clear-groups".into(),
        format!("--bounding-set={bounding}"),
        "--inh-caps=-all".into(),
    ];
    if ctx.no_new_privs {
        setpriv.push("--no-new-privs".into());
    }
    setpriv.push("--".into());
    setpriv.extend(args.iter().cloned());
    let quoted: Vec<String> = setpriv.iter().map(|a| format!("'{a}'")).collect();
    let mut script = String::from("set -e; ");
    for w in writable {
        script += &format!("mount --bind '{0}' '{0}'; ", w.display());
    }
    if ctx.read_only_root {
        script += "mount -o remount,bind,ro /; ";
    }
    script += &format!("exec {}", quoted.join(" "));
    vec![
        "unshare".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "--".into(),
        "sh".into(),
        "-c".into(),
        script,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_and_the_speaker_start_and_serve_under_their_manifests_security_contexts() {
    use std::os::unix::fs::PermissionsExt;
    if !ironlb_lab::netns::require_with(&["setpriv", "unshare"]) {
        return;
    }
    let controller = context_of("deploy/base/statefulset.yaml", "StatefulSet");
    let speaker = context_of("deploy/base/daemonset.yaml", "DaemonSet");
    assert!(controller.add.is_empty() && controller.user != 0 && controller.no_new_privs);

    // Both run as deploy/ has them: the controller issues its own certificate from a CA it
    // creates in a Secret, the speaker proves its node with a projected token and receives its
    // certificate; only their volumes (data, the memory-backed TLS directories) are writable.
    let lan = ironlb_lab::netns::Lan::build(ironlb_lab::netns::LanOptions {
        nodes: 1,
        client: false,
        ..Default::default()
    });
    let host = &lan.nodes[0];
    let api = KubeApi::start_at(ironlb_lab::netns::Lan::HOST.into()).await;
    api.add_token(
        "node-1-token",
        holder(SPEAKERS, "ironlb", &[(NODE_NAME_EXTRA, "node-1")]),
    );
    api.add_token(
        "ci-token",
        holder("system:serviceaccount:ci:ci", API_AUDIENCE, &[]),
    );

    // The image's files and the volumes, readable (or writable) by the pods' users.
    let image = tempfile::tempdir().unwrap();
    std::fs::set_permissions(image.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ironlb = image.path().join("ironlb");
    std::fs::copy(bin(), &ironlb).unwrap();
    let file = |name: &str, text: &str| {
        let to = image.path().join(name);
        std::fs::write(&to, text).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).unwrap();
        to.display().to_string()
    };
    let kubeconfig = file(
        "kubeconfig",
        &std::fs::read_to_string(api.kubeconfig()).unwrap(),
    );
    let token = file("token", "node-1-token");
    let volume = |name: &str, ctx: &Context| {
        let dir = image.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(ctx.user as u32), Some(ctx.group as u32)).unwrap();
        dir
    };
    let (data, ctl_tls) = (volume("data", &controller), volume("ctl-tls", &controller));
    let spk_tls = volume("spk-tls", &speaker);
    let ca = image.path().join("ca.pem");

    let raft = format!("{}:7481", host.addr);
    let admin = format!("{}:7480", host.addr);
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let logs = tempfile::tempdir().unwrap();
    let ctl_cmd = contained(
        &controller,
        &[&data, &ctl_tls],
        &s(&[
            "env",
            &format!("KUBECONFIG={kubeconfig}"),
            ironlb.to_str().unwrap(),
            "controller",
            "--id=1",
            "--bootstrap",
            &format!("--data-dir={}", data.display()),
            &format!("--raft-listen={raft}"),
            &format!("--admin-listen={admin}"),
            &format!("--raft-advertise={raft}"),
            &format!("--admin-advertise={admin}"),
            "--kubernetes",
            "--issue-certificates",
            &format!("--tls-dir={}", ctl_tls.display()),
            "--admin-service-account=ci:ci=admin",
        ]),
    );
    let ctl_args: Vec<&str> = ctl_cmd.iter().map(String::as_str).collect();
    let ctl_log = logs.path().join("controller.log");
    let _ctl = ironlb_lab::netns::Lan::spawn_in(&host.netns, &ctl_args, &ctl_log);
    // The speaker starts before its CA is published, as a pod whose optional ConfigMap volume
    // is still empty does.
    let spk_cmd = contained(
        &speaker,
        &[&spk_tls],
        &s(&[
            ironlb.to_str().unwrap(),
            "speaker",
            "--node-name=node-1",
            &format!("--controllers={raft}"),
            "--interfaces=eth0",
            &format!("--tls-ca={}", ca.display()),
            &format!("--tls-bootstrap={admin}"),
            &format!("--tls-bootstrap-token={token}"),
            &format!("--tls-dir={}", spk_tls.display()),
        ]),
    );
    let spk_args: Vec<&str> = spk_cmd.iter().map(String::as_str).collect();
    let spk_log = logs.path().join("speaker.log");
    let _spk = ironlb_lab::netns::Lan::spawn_in(&host.netns, &spk_args, &spk_log);
    let dump = || {
        format!(
            "--- controller ---\n{}\n--- speaker ---\n{}",
            std::fs::read_to_string(&ctl_log).unwrap_or_default(),
            std::fs::read_to_string(&spk_log).unwrap_or_default()
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let bundle = loop {
        if let Some(cm) = api.get("v1", "ConfigMap", Some("ironlb-system"), "ironlb-ca") {
            break cm["data"]["ca.pem"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no CA published\n{}", dump());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    file("ca.pem", &bundle);

    // Both serve: the controller its admin API over TLS (to a ServiceAccount token), the
    // speaker its health, and the speaker holds a lease from the controller (it is ready).
    let admin_client = AdminClient::with_credentials(
        vec![admin.clone()],
        Duration::from_secs(2),
        &Credentials {
            ca: Some(ca.clone()),
            cert: None,
            token: Some("ci-token".into()),
        },
    )
    .unwrap();
    let http = reqwest::Client::new();
    loop {
        let ctl_ok = admin_client.get::<Status>("/v1/status").await.is_ok();
        let spk_ok = match http
            .get(format!("http://{}:7472/readyz", host.addr))
            .send()
            .await
        {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        };
        if ctl_ok && spk_ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "controller serving: {ctl_ok}, speaker ready: {spk_ok}\n{}",
            dump()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(spk_tls.join("node.pem").exists() && ctl_tls.join("member.pem").exists());
}
