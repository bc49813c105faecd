//! A pod gets its address and routes, reaches its gateway, other pods and (through masquerade) upstream.

use crate::support::*;

#[test]
fn pod_gets_address_routes_and_reaches_gateway() {
    let node = Node::new("10.60.0.0/24");
    let pod = Ns::new("pod");
    let res = node.add(&pod, "conn1").ok().clone();
    let ip = pod_ip(&res);
    assert_eq!(res["ips"][0]["gateway"], "10.60.0.1");

    let addr = pod.ip(&["-o", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains(&format!("inet {ip}/24")), "{addr}");
    let link = pod.ip(&["link", "show", "eth0"]);
    assert!(link.contains("mtu 1400"));
    let mac = res["interfaces"][1]["mac"].as_str().unwrap();
    assert!(link.contains(&format!("link/ether {mac}")), "result MAC {mac} is not the interface's: {link}");
    let host_link = node.ns.ip(&["link", "show", res["interfaces"][0]["name"].as_str().unwrap()]);
    assert!(host_link.contains(&format!("link/ether {}", res["interfaces"][0]["mac"].as_str().unwrap())), "{host_link}");
    assert!(pod.ip(&["link", "show", "lo"]).contains("UP"));
    let routes = pod.ip(&["route", "show"]);
    assert!(routes.contains("default via 10.60.0.1 dev eth0"), "{routes}");
    assert!(routes.contains("10.60.0.1 dev eth0") && routes.contains("scope link"), "{routes}");
    assert!(!routes.contains("10.60.0.0/24"), "routed mode must not add a subnet route: {routes}");

    let host = res["interfaces"][0]["name"].as_str().unwrap();
    let host_addr = node.ns.ip(&["-o", "addr", "show", "dev", host]);
    assert!(host_addr.contains("inet 10.60.0.1/32"), "{host_addr}");
    let node_routes = node.ns.ip(&["route", "show"]);
    assert!(node_routes.contains(&format!("{ip} dev {host}")), "{node_routes}");
    assert_eq!(node.ns.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout, b"1\n");

    assert!(pod.ping("10.60.0.1"), "pod cannot ping its gateway");
    node.del(&pod, "conn1").succeeded();
    node.assert_clean();
}

#[test]
fn two_pods_reach_each_other_and_upstream_through_masquerade() {
    let node = Node::new("10.61.0.0/24");
    let (a, b) = (Ns::new("pa"), Ns::new("pb"));
    let res_a = node.add(&a, "pod-a").ok().clone();
    let ip_a = pod_ip(&res_a);
    // An IPv4-only pod's node end has IPv6 off: no link-local address, no fe80::/64 route beside every
    // other pod's (what made ADD slower as a node filled).
    let host = res_a["interfaces"][0]["name"].as_str().unwrap();
    let off = node.ns.exec(&["cat", &format!("/proc/sys/net/ipv6/conf/{host}/disable_ipv6")]);
    assert_eq!(String::from_utf8_lossy(&off.stdout).trim(), "1");
    assert!(node.ns.ip(&["-6", "-o", "addr", "show", "dev", host]).trim().is_empty());
    let ip_b = pod_ip(node.add(&b, "pod-b").ok());
    assert_ne!(ip_a, ip_b);
    assert!(a.ping(&ip_b), "pod a cannot reach pod b");
    assert!(b.ping(&ip_a), "pod b cannot reach pod a");

    assert!(a.ping(UPSTREAM_IP), "pod cannot reach upstream");
    let seen = node.upstream_sees(&a);
    assert_eq!(seen.ip().to_string(), NODE_UPLINK_IP, "upstream must see the node's address (masquerade)");

    // Without the masquerade chain upstream cannot answer: proves the rule, not luck, carries the traffic.
    node.del(&b, "pod-b").succeeded();
    assert!(node.masquerades("pod-a", &ip_a), "{:?}", node.rules_of("pod-a"));
    node.remove_masquerade("pod-a", &ip_a);
    assert!(!a.ping(UPSTREAM_IP), "upstream answered without masquerade: the test proves nothing");

    node.del(&a, "pod-a").succeeded();
    node.assert_clean();
}

#[test]
fn fifty_concurrent_adds_get_distinct_addresses_that_work() {
    let node = Node::new("10.62.0.0/24");
    let pods: Vec<Ns> = (0..50).map(|i| Ns::new(&format!("c{i}"))).collect();
    let conf = node.conf("1.0.0");
    let ips: Vec<String> = node.add_concurrently(&conf, &pods, "conc").iter().map(|r| pod_ip(r.ok())).collect();
    let distinct: std::collections::HashSet<_> = ips.iter().collect();
    assert_eq!(distinct.len(), 50, "duplicate addresses: {ips:?}");
    assert_eq!(node.reserved_ips().len(), 50);
    if crate::fw::under_test() == crate::fw::Fw::Nftables {
        // All 50 were the network's first pod at once: each found no masquerade set and asked for one. The
        // set is created exclusively, so the losers rebuilt their batch: one set, one rule, one chain.
        let pieces = node.masquerade_pieces();
        let count = |prefix: &str| pieces.iter().filter(|p| p.starts_with(prefix)).count();
        assert_eq!((count("set s4-"), count("masq: "), count("chain m4-")), (1, 1, 1), "{pieces:#?}");
    }
    for (pod, ip) in pods.iter().zip(&ips) {
        assert!(pod.ping("10.62.0.1"), "pod {ip} cannot reach the gateway");
    }
    for (i, pod) in pods.iter().enumerate() {
        node.del(pod, &format!("conc{i}")).succeeded();
    }
    node.assert_clean();
}

#[test]
fn the_pod_end_is_born_in_the_pod_namespace_and_never_appears_on_the_node() {
    let node = Node::new("10.63.0.0/24");
    let pod = Ns::new("born");
    // Everything the node's namespace sees happen to its links during the ADD.
    let mut monitor = std::process::Command::new("ip")
        .args(["-n", &node.ns.name, "monitor", "link"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let res = node.add(&pod, "born").ok().clone();
    std::thread::sleep(std::time::Duration::from_millis(200));
    monitor.kill().unwrap();
    let out = monitor.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    let host = res["interfaces"][0]["name"].as_str().unwrap();
    assert!(seen.contains(host), "the monitor saw nothing of the ADD: {seen}");
    assert!(!seen.contains(": eth0"), "the pod's interface existed on the node (create-then-move): {seen}");
    node.del(&pod, "born").succeeded();
    node.assert_clean();
}
