#!/usr/bin/env python3
"""Tests of check_exports.py's parts, on names and headers made up to
fail: the install test trusts it to catch a leak."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_exports  # noqa: E402


class MangledNamesTest(unittest.TestCase):
    def test_cairn_names_and_their_special_names_are_cairns(self):
        for name in ["_ZN5cairn7versionEv", "_ZNK5cairn5Store8versionsESt17basic_string_viewIcSt11char_traitsIcEE",
                     "_ZTIN5cairn5StoreE", "_ZTSN5cairn5StoreE", "_ZTVN5cairn10StatsStoreE",
                     "_ZThn8_N5cairn10StatsStore3getEv", "_ZGVN5cairn4JsonE"]:
            self.assertTrue(check_exports.CAIRN_MANGLED.match(name), name)

    def test_standard_library_instances_over_cairn_types_are_not(self):
        # std::_Rb_tree<..., cairn::Json>::_M_erase and a std::vector<cairn::Versioned> member.
        for name in ["_ZNSt8_Rb_treeINSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEESt4pairIKS5_N5cairn4JsonEE"
                     "St10_Select1stIS9_ESt4lessIS5_ESaIS9_EE8_M_eraseEPSt13_Rb_tree_nodeIS9_E",
                     "_ZNSt6vectorIN5cairn9VersionedESaIS1_EE17_M_realloc_insertEv", "mdb_version",
                     "_ZN5boost6system14error_categoryD2Ev"]:
            self.assertFalse(check_exports.CAIRN_MANGLED.match(name), name)


class ComponentsTest(unittest.TestCase):
    def test_every_part_of_a_nested_name(self):
        self.assertEqual(
            check_exports.components("guard variable for cairn::LogStore::State::read(int) const::copy"),
            ["cairn", "LogStore", "State", "read"])

    def test_template_arguments_and_return_types_are_not_parts(self):
        self.assertEqual(
            check_exports.components("std::shared_ptr<cairn::Foo> cairn::internal::typed<cairn::Json>(int)"),
            ["cairn", "internal", "typed"])
        self.assertEqual(check_exports.components("typeinfo for cairn::Serializer<long>"),
                         ["cairn", "Serializer"])


class HeadersTest(unittest.TestCase):
    def headers(self, text):
        d = tempfile.mkdtemp()
        os.mkdir(os.path.join(d, "cairn"))
        with open(os.path.join(d, "cairn", "x.h"), "w") as f:
            f.write(text)
        return check_exports.header_problems(d)

    def test_words_come_from_code_not_comments(self):
        words, internal, problems = self.headers(
            "// HintedHandoff is mentioned here only\nCAIRN_API_BEGIN\nnamespace cairn {\n"
            "class Shown;\nclass CAIRN_INTERNAL Hidden;\n}\nCAIRN_API_END\n")
        self.assertIn("Shown", words)
        self.assertNotIn("HintedHandoff", words - check_exports.INTERNAL)
        self.assertIn("Hidden", internal)
        self.assertEqual(problems, [])

    def test_a_namespace_outside_the_api_markers_is_a_problem(self):
        _, _, problems = self.headers("namespace cairn {\nvoid f();\n}\n")
        self.assertEqual(len(problems), 1)


if __name__ == "__main__":
    unittest.main()
